// Runs the webhook server (app/main.ts, the code the image runs) as a local process on 127.0.0.1,
// serving a certificate that a throw-away CA signed for IP:127.0.0.1, as the chart's out-of-cluster
// development mode (webhook.url + webhook.caBundle) expects; or in self-signed mode, where the
// process makes its own CA and keeps the webhook configuration's caBundle itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCa, issueServingCert, type KeyPairPem } from '../../app/tls/certs.ts';
import { ENV, PATH_METRICS, PATH_MUTATE, PATH_READYZ } from '../../app/contract.ts';
import { REPO_ROOT } from '../cluster/harness.ts';
import { freePort } from '../cluster/free-port.ts';

export { freePort };

export interface WebhookTls {
  ca: KeyPairPem;
  serving: KeyPairPem;
  /** base64 of the CA PEM: the chart's webhook.caBundle. */
  caBundle: string;
  dir: string;
  certFile: string;
  keyFile: string;
  cleanup(): void;
}

export async function createWebhookTls(): Promise<WebhookTls> {
  const now = new Date();
  const ca = await createCa('pando-e2e-webhook-ca', now, 2);
  const serving = await issueServingCert(ca, ['127.0.0.1'], now, 2);
  const dir = mkdtempSync(join(tmpdir(), 'pando-e2e-webhook-'));
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  writeFileSync(certFile, serving.certPem);
  writeFileSync(keyFile, serving.keyPem, { mode: 0o600 });
  return {
    ca,
    serving,
    caBundle: Buffer.from(ca.certPem).toString('base64'),
    dir,
    certFile,
    keyFile,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface WebhookProcess {
  port: number;
  url: string;
  /** Sum of the samples of a metric on the plain-HTTP metrics port whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  stop(): Promise<void>;
  /** SIGKILL, as a node failure or an OOM kill ends a pod: nothing is released (Leases expire). */
  kill(): Promise<void>;
}

function readyz(port: number, caPem: string | undefined): Promise<number> {
  return new Promise((res) => {
    const trust = caPem === undefined ? { rejectUnauthorized: false } : { ca: caPem };
    const req = httpsRequest({ host: '127.0.0.1', port, path: PATH_READYZ, ...trust, timeout: 2000 }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('error', () => res(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * Starts `node app/main.ts` with `env` (the chart's env for the webhook container, typically) plus
 * the local listening and TLS settings, and waits until /readyz answers 200.
 */
export async function startWebhook(tls: WebhookTls, env: Record<string, string>, port?: number): Promise<WebhookProcess> {
  const image = process.env.PANDO_E2E_IMAGE;
  if (image) return startFromImage(image, tls, env, port);
  return spawnWebhook({ ...env, [ENV.tlsCertFile]: tls.certFile, [ENV.tlsKeyFile]: tls.keyFile }, tls.ca.certPem, port);
}

/**
 * Starts `node app/main.ts` in self-signed mode (PANDO_TLS_SELF_SIGNED=true, no TLS files): the
 * process makes or reads its CA from the Secret and patches the webhook configuration's caBundle
 * itself, so `env` must carry KUBECONFIG and the namespace. Ready means /readyz answers 200; whom
 * the served certificate is trusted by is for the test to check (see `servedCertificate`).
 */
export async function startSelfSignedWebhook(env: Record<string, string>, port?: number): Promise<WebhookProcess> {
  // Each process is a replica of its own in the Secret's serving records, as pods are by name.
  return spawnWebhook({ [ENV.podName]: `e2e-webhook-${randomBytes(3).toString('hex')}`, ...env, [ENV.tlsSelfSigned]: 'true' }, undefined, port);
}

/**
 * Starts `node app/main.ts` serving the PEM files at `certFile`/`keyFile` (for example written from a
 * cert-manager Secret, laid out as a Secret volume): the test may rewrite them to show a hot reload.
 * `caPem` verifies /readyz.
 */
export async function startWebhookWithFiles(files: { certFile: string; keyFile: string }, caPem: string, env: Record<string, string>, port?: number): Promise<WebhookProcess> {
  return spawnWebhook({ ...env, [ENV.tlsCertFile]: files.certFile, [ENV.tlsKeyFile]: files.keyFile }, caPem, port);
}

/** The leaf certificate the server on 127.0.0.1:port presents, whoever issued it. */
export function servedCertificate(port: number): Promise<X509Certificate> {
  return new Promise((res, rej) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, timeout: 5000 }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) res(cert);
      else rej(new Error(`no certificate from 127.0.0.1:${port}`));
    });
    socket.once('error', rej);
    socket.once('timeout', () => socket.destroy(new Error(`TLS handshake with 127.0.0.1:${port} timed out`)));
  });
}

/**
 * Connects to 127.0.0.1:port trusting only `caPem` (as the API server does with a caBundle) and
 * checking the name 127.0.0.1: resolves with the TLS library's verdict ('ok' or its error code).
 */
export function verifyServedChain(port: number, caPem: string): Promise<string> {
  return new Promise((res) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: caPem, rejectUnauthorized: false, timeout: 5000 }, () => {
      const verdict = socket.authorized ? 'ok' : String(socket.authorizationError);
      socket.end();
      res(verdict);
    });
    socket.once('error', (err) => res(`error: ${err.message}`));
    socket.once('timeout', () => socket.destroy(new Error('timeout')));
  });
}

/** Spawns app/main.ts with `env` plus the local listening settings; `caPem` verifies /readyz when given. */
async function spawnWebhook(env: Record<string, string>, caPem: string | undefined, port?: number): Promise<WebhookProcess> {
  const listenPort = port ?? (await freePort());
  let metricsPort = await freePort();
  while (metricsPort === listenPort) metricsPort = await freePort();
  const child: ChildProcess = spawn(process.execPath, [join(REPO_ROOT, 'app/main.ts')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      [ENV.logLevel]: 'warn',
      [ENV.shutdownDelayMs]: '0',
      ...env,
      [ENV.host]: '127.0.0.1',
      [ENV.port]: String(listenPort),
      [ENV.metricsPort]: String(metricsPort),
    },
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    if (child.exitCode !== null) throw new Error(`the webhook exited with ${child.exitCode}:\n${out}`);
    if ((await readyz(listenPort, caPem)) === 200) {
      return {
        port: listenPort,
        url: `https://127.0.0.1:${listenPort}${PATH_MUTATE}`,
        output: () => out,
        metric: async (name, labels = {}) => {
          const text = await (await fetch(`http://127.0.0.1:${metricsPort}${PATH_METRICS}`)).text();
          let sum = 0;
          for (const line of text.split('\n')) {
            const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
            if (!m || m[1] !== name) continue;
            const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
            if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
          }
          return sum;
        },
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            const killed = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
            if (!killed) child.kill('SIGKILL');
            await exited;
          }
        },
        kill: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
      };
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`the webhook did not become ready in 30 s:\n${out}`);
}

/**
 * The same webhook from the image (npm run test:e2e publishes it and sets PANDO_E2E_IMAGE to its
 * digest reference): pulled back from the 127.0.0.1 registry, unpacked and run as uid 65532 with a
 * read-only root and the certificate files mounted where the chart mounts its Secret. The
 * kubeconfig (client certificates embedded) is mounted beside them, standing in for the service
 * account token a pod gets.
 */
async function startFromImage(ref: string, tls: WebhookTls, env: Record<string, string>, port?: number): Promise<WebhookProcess> {
  const { startWebhookFromImage, TLS_MOUNT_PATH } = await import('../../scripts/image/run-from-image.ts');
  const { KUBECONFIG, ...rest } = env;
  const hook = await startWebhookFromImage({
    ref,
    env: { ...rest, ...(KUBECONFIG ? { KUBECONFIG: `${TLS_MOUNT_PATH}/kubeconfig` } : {}) },
    certPem: tls.serving.certPem,
    keyPem: tls.serving.keyPem,
    caPem: tls.ca.certPem,
    port,
    extraFiles: KUBECONFIG ? { kubeconfig: readFileSync(KUBECONFIG, 'utf8') } : {},
  });
  const kill = async () => {
    try {
      process.kill(hook.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await hook.stop();
  };
  return { port: hook.port, url: hook.url, metric: hook.metric, output: hook.output, stop: hook.stop, kill };
}
