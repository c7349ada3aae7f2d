// Over real HTTPS on 127.0.0.1: TLS 1.2+, keep-alive reuse, and a certificate swapped by the
// reloader while a keep-alive connection stays open and usable.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { createCa, issueServingCert, type IssuedCert } from '../../app/tls/certs.ts';
import { createCertReloader, secureContextOptions, type ServingPair } from '../../app/tls/serving.ts';
import { decodePatch } from '../helpers/golden.ts';
import { labelledPod, podReview, testServer } from '../helpers/server.ts';

interface Answer { status: number; body: string; socketId: number; peerFingerprint: string }

let nextSocketId = 0;
const socketIds = new WeakMap<object, number>();

function post(port: number, ca: string, agent: https.Agent, payload: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(payload);
    const req = https.request(
      { host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        // Taken now: once the body ends, a keep-alive socket goes back to the agent.
        const socket = res.socket as tls.TLSSocket;
        if (!socketIds.has(socket)) socketIds.set(socket, ++nextSocketId);
        const peerFingerprint = socket.getPeerCertificate().fingerprint256;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socketId: socketIds.get(socket)!, peerFingerprint }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

describe('HTTPS on 127.0.0.1', () => {
  let ca: IssuedCert;
  let first: IssuedCert;
  let second: IssuedCert;
  const dir = mkdtempSync(join(tmpdir(), 'pando-tls-'));
  before(async () => {
    const now = new Date();
    ca = await createCa('test CA', now, 2);
    first = await issueServingCert(ca, ['127.0.0.1'], now, 1);
    second = await issueServingCert(ca, ['127.0.0.1'], now, 1);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves reviews over TLS with keep-alive and reloads the certificate without dropping the connection', async () => {
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, first.certPem);
    writeFileSync(keyFile, first.keyPem);
    let pair: ServingPair | undefined;
    let server: HttpsServer | undefined;
    const reloader = createCertReloader({
      files: { certFile, keyFile },
      onChange: (next) => {
        pair = next;
        server?.setSecureContext(secureContextOptions(next));
      },
      onError: (err) => assert.fail(err),
      pollIntervalMs: 60_000,
    });
    pair = reloader.reload();
    assert.ok(pair);
    const initialFingerprint = pair.fingerprint;
    const { app } = testServer({}, { tls: secureContextOptions(pair) });
    server = app.server as unknown as HttpsServer;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await post(port, ca.certPem, agent, podReview(labelledPod()));
      assert.equal(a.status, 200);
      assert.ok(decodePatch(JSON.parse(a.body).response.patch).length > 0);
      const b = await post(port, ca.certPem, agent, podReview(labelledPod()));
      assert.equal(b.socketId, a.socketId, 'keep-alive: the second review reuses the connection');

      // Swap the files the way a Secret volume update does (write elsewhere, rename into place).
      writeFileSync(`${certFile}.new`, second.certPem);
      writeFileSync(`${keyFile}.new`, second.keyPem);
      renameSync(`${keyFile}.new`, keyFile);
      renameSync(`${certFile}.new`, certFile);
      const reloaded = reloader.reload();
      assert.equal(a.peerFingerprint, initialFingerprint, 'first connection saw the first certificate');
      assert.notEqual(reloaded?.fingerprint, a.peerFingerprint, 'the reloader picked up the new pair');

      const c = await post(port, ca.certPem, agent, podReview(labelledPod()));
      assert.equal(c.status, 200, 'the open keep-alive connection still answers');
      assert.equal(c.socketId, a.socketId, 'same connection as before the reload');
      assert.equal(c.peerFingerprint, a.peerFingerprint, 'that connection keeps its handshake');

      const fresh = new https.Agent({ keepAlive: false });
      const d = await post(port, ca.certPem, fresh, podReview(labelledPod()));
      assert.equal(d.status, 200);
      assert.notEqual(d.peerFingerprint, a.peerFingerprint, 'a new connection gets the new certificate');
      assert.equal(d.peerFingerprint, reloaded?.fingerprint);
    } finally {
      agent.destroy();
      reloader.stop();
      await app.close();
    }
  });

  it('refuses TLS 1.1', async () => {
    const { app } = testServer({}, { tls: { cert: first.certPem, key: first.keyPem } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    try {
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => {
          socket.end();
          resolve('connected');
        });
        socket.on('error', (err) => resolve(`refused: ${err.message}`));
      });
      assert.match(outcome, /^refused/);
    } finally {
      await app.close();
    }
  });

  it('speaks HTTP/1.1 only: an ALPN offer of h2 alone gets no h2, h2 and http/1.1 gets http/1.1', async () => {
    // As kubebuilder's scaffolding since CVE-2023-44487 (HTTP/2 rapid reset): NextProtos http/1.1.
    // node:https (fastify's server) announces http/1.1 by default; a switch to node:http2 with
    // allowHTTP1 would answer h2 here and fail.
    const { app } = testServer({}, { tls: { cert: first.certPem, key: first.keyPem } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const offer = (protocols: string[]) =>
      new Promise<string>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, ALPNProtocols: protocols }, () => {
          resolve(`negotiated ${socket.alpnProtocol || 'nothing'}`);
          socket.end();
        });
        socket.on('error', (err) => resolve(`refused: ${err.message}`));
      });
    try {
      const h2Only = await offer(['h2']);
      assert.doesNotMatch(h2Only, /negotiated h2/);
      assert.match(h2Only, /refused: .*no application protocol/);
      assert.equal(await offer(['h2', 'http/1.1']), 'negotiated http/1.1');
    } finally {
      await app.close();
    }
  });

  it('a key that does not match the certificate is rejected with a reason, and the old pair stays', async () => {
    const certFile = join(dir, 'm.crt');
    const keyFile = join(dir, 'm.key');
    writeFileSync(certFile, first.certPem);
    writeFileSync(keyFile, first.keyPem);
    const errors: string[] = [];
    const reloader = createCertReloader({ files: { certFile, keyFile }, onChange: () => undefined, onError: (e) => errors.push(e.message) });
    const good = reloader.reload();
    writeFileSync(keyFile, second.keyPem);
    assert.equal(reloader.reload(), good, 'the valid pair stays in use');
    assert.deepEqual(errors, ['key does not match the certificate']);
  });
});
