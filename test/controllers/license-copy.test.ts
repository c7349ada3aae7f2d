// License copy (protectedNamespaces with license.existingSecret) against a fake API server on
// 127.0.0.1 (issue 23 item 10): it never forces, refuses a Secret of another type with a log line,
// and runs only on the Lease holder, from the namespace watch.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { startLicenseCopy } from '../../app/controllers/license-copy.ts';

interface Call { method: string; path: string; query: URLSearchParams; body: any }

function fakeApiServer(state: { secrets: Record<string, { type: string; data: Record<string, string> }>; leaseHolder?: string }) {
  const calls: Call[] = [];
  let lease: any;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const url = new URL(req.url!, 'http://x');
      const call = { method: req.method!, path: url.pathname, query: url.searchParams, body: text ? JSON.parse(text) : undefined };
      calls.push(call);
      const send = (code: number, body: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const notFound = () => send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
      // Discovery, which KubernetesObjectApi asks before its first call of a kind.
      if (url.pathname === '/apis/coordination.k8s.io/v1') return send(200, { kind: 'APIResourceList', groupVersion: 'coordination.k8s.io/v1', resources: [{ name: 'leases', namespaced: true, kind: 'Lease', verbs: ['get', 'create', 'update'] }] });
      if (url.pathname === '/api/v1') return send(200, { kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'secrets', namespaced: true, kind: 'Secret', verbs: ['get', 'patch'] }, { name: 'namespaces', namespaced: false, kind: 'Namespace', verbs: ['list', 'watch'] }] });
      const m = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/);
      if (url.pathname.startsWith('/apis/coordination.k8s.io/v1/namespaces/pando-system/leases')) {
        if (req.method === 'GET') {
          if (state.leaseHolder) return send(200, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'pando-system', resourceVersion: '1' }, spec: { holderIdentity: state.leaseHolder, leaseDurationSeconds: 15, renewTime: new Date().toISOString().replace('Z', '000Z').replace(/\.(\d{3})000Z$/, '.$1000Z') } });
          return lease ? send(200, lease) : notFound();
        }
        lease = { ...call.body, metadata: { ...call.body.metadata, resourceVersion: String(Date.now()) } };
        return send(req.method === 'POST' ? 201 : 200, lease);
      }
      if (url.pathname === '/api/v1/namespaces' && url.searchParams.get('watch') === 'true') return; // held open
      if (url.pathname === '/api/v1/namespaces') {
        return send(200, { apiVersion: 'v1', kind: 'NamespaceList', metadata: { resourceVersion: '5' }, items: ['shop', 'team'].map((name) => ({ metadata: { name, uid: name } })) });
      }
      if (m) {
        const key = `${m[1]}/${m[2]}`;
        if (req.method === 'GET') return state.secrets[key] ? send(200, { apiVersion: 'v1', kind: 'Secret', metadata: { name: m[2], namespace: m[1] }, ...state.secrets[key] }) : notFound();
        if (req.method === 'PATCH') {
          state.secrets[key] = { type: call.body.type, data: call.body.data };
          return send(200, call.body);
        }
      }
      notFound();
    });
  });
  return { server, calls };
}

function kubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  return kc;
}

const SOURCE = { 'pando-system/existing-license': { type: 'Opaque', data: { key: 'bGljZW5zZQ==' } } };

async function run(state: Parameters<typeof fakeApiServer>[0], ms = 1500) {
  const { server, calls } = fakeApiServer(state);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const logs: string[] = [];
  const log = { info: (_o: object, m: string) => logs.push(m), warn: (o: object, m: string) => logs.push(`${m} ${JSON.stringify(o)}`) };
  const copy = startLicenseCopy({ kubeConfig: kubeConfig((server.address() as AddressInfo).port), namespace: 'pando-system', namespaces: ['shop', 'team'], source: { name: 'existing-license', key: 'key' }, identity: 'replica-a', log, intervalMs: 200 } as never);
  await new Promise((r) => setTimeout(r, ms));
  await copy.stop();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  return { calls, logs };
}

describe('license copy (issue 23 item 10)', () => {
  it('never forces; a docker-registry Secret named pando-license is refused and reported, not overwritten', async () => {
    const docker = { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'e30=' } };
    const state = { secrets: { ...SOURCE, 'team/pando-license': { ...docker } } as Record<string, { type: string; data: Record<string, string> }> };
    const { calls, logs } = await run(state);
    if (process.env.DEBUG_COPY) console.log(calls.map((c) => `${c.method} ${c.path}?${c.query}`).join("\n"), logs.join("\n"));
    const patches = calls.filter((c) => c.method === 'PATCH');
    assert.deepEqual(patches.map((c) => c.path), ['/api/v1/namespaces/shop/secrets/pando-license'], 'one apply, into shop only');
    assert.ok(patches.every((c) => c.query.get('force') !== 'true'), `force: ${patches.map((c) => c.query.get('force'))}`);
    assert.deepEqual(state.secrets['team/pando-license'], docker, 'the docker-registry Secret is untouched');
    assert.equal(state.secrets['shop/pando-license']?.type, 'Opaque');
    assert.ok(logs.some((l) => /Secret pando-license exists with another type; refused/.test(l) && l.includes('kubernetes.io/dockerconfigjson')), logs.join('\n'));
  });

  it('a replica that does not hold the Lease copies nothing', async () => {
    const state = { secrets: { ...SOURCE } as Record<string, { type: string; data: Record<string, string> }>, leaseHolder: 'replica-b' };
    const { calls } = await run(state, 800);
    assert.deepEqual(calls.filter((c) => c.path.includes('/secrets/')).map((c) => `${c.method} ${c.path}`), []);
  });
});
