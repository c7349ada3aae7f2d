// The list-watch (app/controllers/informer.ts) against a fake API server on 127.0.0.1 that ends
// every watch at once (issue 23 item 9): the informer must back off, not reopen it in a hot loop.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { startInformer, watchBackoffMs } from '../../app/controllers/informer.ts';

function kubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  return kc;
}

describe('informer watch back-off', () => {
  it('a watch the server ends at once is reopened a few times in 2 s, not hundreds', async () => {
    let watches = 0;
    let lists = 0;
    const server = createServer((req, res) => {
      if (req.url?.includes('watch=true')) watches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(); // ends the watch at once, no error, no event
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const informer = startInformer<{ name: string }>(kubeConfig(port), {
      path: '/api/v1/namespaces',
      labelSelector: 'a=b',
      list: async () => {
        lists++;
        return { items: [], metadata: { resourceVersion: '7' } };
      },
      slim: (raw) => ({ name: raw?.metadata?.name ?? '' }),
      what: 'namespace',
    }, { replaced: () => undefined, upserted: () => undefined, deleted: () => undefined }, { info: () => undefined, warn: () => undefined });
    await new Promise((r) => setTimeout(r, 2000));
    informer.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    assert.ok(watches >= 1, 'the watch was opened');
    assert.ok(watches <= 6, `${watches} watch requests and ${lists} lists in 2 s`);
  });

  it('the back-off doubles from 500 ms to at most 30 s, with up to 50 % jitter, and resets after a healthy watch', () => {
    for (let failures = 1; failures <= 12; failures++) {
      const base = Math.min(30_000, 500 * 2 ** (failures - 1));
      assert.equal(watchBackoffMs(failures, () => 0), base);
      assert.ok(watchBackoffMs(failures, () => 0.999999) <= base * 1.5);
    }
    assert.equal(watchBackoffMs(0, () => 0.5), 0, 'a watch that ran normally is reopened at once');
  });
});
