// A free TCP port on 127.0.0.1, for every process the test cluster and the e2e start. A leaf module:
// harness.ts, node.ts and the e2e helpers import it, and it imports nothing of theirs.
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}
