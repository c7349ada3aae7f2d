// The self-signed manager against a small fake API server on 127.0.0.1 (one Secret, one webhook
// configuration): it serves a leaf only once the caBundle it reads back trusts it, says so through
// onBundleCheck (what /readyz and pandocore_cabundle_in_sync follow), and a lost Secret keeps the
// trust the webhook configuration already had (issue 19 items 1 and 7).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import { createCa } from '../../../app/tls/certs.ts';
import { createSelfSignedManager, type SecretProblem } from '../../../app/tls/selfsigned/manager.ts';
import { issuedBy } from '../../../app/tls/selfsigned/rotation.ts';
import type { ServingPair } from '../../../app/tls/serving.ts';

const SECRET_PATH = '/api/v1/namespaces/pando-system/secrets';
const CONFIG_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pando-webhook';

async function fakeApiServer(caBundle: string) {
  let secret: any;
  let version = 1;
  const config: any = { metadata: { name: 'pando-webhook', resourceVersion: '1' }, webhooks: [{ name: 'inject.pandocore.xyz', clientConfig: { url: 'https://127.0.0.1:1/mutate', caBundle } }] };
  const state = { patchAllowed: false, patches: 0 };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = text ? JSON.parse(text) : undefined;
    const url = (req.url ?? '').split('?')[0];
    if (url === `${SECRET_PATH}/pando-webhook-tls` && req.method === 'GET') return secret ? send(res, 200, secret) : send(res, 404, { kind: 'Status', code: 404 });
    if (url === SECRET_PATH && req.method === 'POST') {
      if (secret) return send(res, 409, { kind: 'Status', code: 409 });
      secret = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return send(res, 201, secret);
    }
    if (url === `${SECRET_PATH}/pando-webhook-tls` && req.method === 'PUT') {
      if (body.metadata.resourceVersion !== secret?.metadata.resourceVersion) return send(res, 409, { kind: 'Status', code: 409 });
      secret = { ...body, metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return send(res, 200, secret);
    }
    if (url === CONFIG_PATH && req.method === 'GET') return send(res, 200, config);
    if (url === CONFIG_PATH && req.method === 'PATCH') {
      state.patches++;
      if (!state.patchAllowed) return send(res, 403, { kind: 'Status', code: 403, message: 'forbidden' });
      fastJsonPatch.applyPatch(config, body, true);
      config.metadata.resourceVersion = String(++version);
      return send(res, 200, config);
    }
    return send(res, 404, { kind: 'Status', code: 404 });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return { port, state, config, close: () => new Promise((r) => server.close(r)) };
}

function kubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'webhook' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'webhook' }],
    currentContext: 'fake',
  });
  return kc;
}

describe('self-signed manager (fake API server)', () => {
  it('a failing caBundle patch: nothing untrusted is served and the replica is unready; once it goes through, serving and ready', async () => {
    // The configuration already trusts a CA (the Secret was lost, say): that trust must stay.
    const previous = await createCa('earlier pando-webhook CA', new Date(), 30);
    const api = await fakeApiServer(Buffer.from(previous.certPem).toString('base64'));
    const served: ServingPair[] = [];
    const checks: boolean[] = [];
    const recoveries: SecretProblem[] = [];
    const manager = createSelfSignedManager(kubeConfig(api.port), {
      namespace: 'pando-system',
      secretName: 'pando-webhook-tls',
      webhookConfigName: 'pando-webhook',
      policy: { hosts: ['127.0.0.1'], caValidityDays: 30, leafValidityDays: 3, rotateAt: 0.67, propagationMs: 0, retireMs: 60_000, servingTtlMs: 60_000 },
      checkIntervalMs: 20_000,
      logger: pino({ level: 'silent' }),
      replica: 'pod-a',
      onServe: (pair) => served.push(pair),
      onBundleCheck: (inSync) => checks.push(inSync),
      onRecovery: (reason) => recoveries.push(reason),
    });
    try {
      await manager.reconcile();
      assert.equal(api.state.patches, 1, 'the patch was tried');
      assert.equal(served.length, 0, 'the new leaf is not served while caBundle does not trust it');
      assert.deepEqual(checks, [false], 'unready');
      assert.deepEqual(recoveries, ['missing'], 'a lost Secret next to an existing caBundle is a recovery');

      api.state.patchAllowed = true;
      await manager.reconcile();
      assert.equal(served.length, 1, 'served once trusted');
      assert.deepEqual(checks, [false, true], 'ready');
      const bundle = Buffer.from(api.config.webhooks[0].clientConfig.caBundle, 'base64').toString('utf8');
      assert.ok(bundle.includes(previous.certPem.trim()), 'the CA the configuration trusted before is still trusted');
      const pems = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
      assert.ok(pems.some((ca) => issuedBy(served[0]!.certPem, ca)), 'the served leaf is issued by a CA of the bundle');
    } finally {
      manager.stop();
      await api.close();
    }
  });
});
