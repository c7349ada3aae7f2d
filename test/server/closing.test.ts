// Once buildServer's instance is closing, a request that still arrives on a kept-alive connection
// is answered with `connection: close`, so the client opens its next connection elsewhere. fastify
// does this itself (lib/route.js, for every HTTP/1 request routed while closing), so the server
// needs no hook of its own for it (issue 26 item 6); in app/main.ts, the drain delay before close
// is covered by app/server/drain.ts (test/main.test.ts).

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

/** Reads one HTTP/1.1 response (head and Content-Length body) from the socket. */
function readResponse(socket: Socket): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = buffer.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (buffer.length < end + 4 + length) return;
      socket.off('data', onData);
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: buffer.slice(end + 4, end + 4 + length) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

function head(body: string) {
  return `POST /mutate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
}

describe('closing', () => {
  it('a review arriving on a kept-alive connection after close() began is told connection: close', async () => {
    const { app } = testServer();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    try {
      const body = JSON.stringify(podReview(labelledPod()));
      // A review half sent: its connection is busy, so close() does not cut it.
      socket.write(head(body) + body.slice(0, 100));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const closed = app.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const first = readResponse(socket);
      socket.write(body.slice(100));
      const answer = await first;
      assert.equal(answer.status, 200);
      assert.notEqual(answer.headers.connection, 'close', 'the review that arrived before close() keeps its connection');
      // The next review on that connection arrives while the server is closing.
      const second = readResponse(socket);
      socket.write(head(body) + body);
      const late = await second;
      assert.equal(late.status, 200);
      assert.equal(JSON.parse(late.body).response.auditAnnotations.reason, 'injected', 'still answered');
      assert.equal(late.headers.connection, 'close');
      socket.end();
      await closed;
    } finally {
      socket.destroy();
    }
  });
});
