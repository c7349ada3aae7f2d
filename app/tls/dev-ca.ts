// `npm start`'s development CA (no TLS files, not self-signed mode). It is kept on disk and reused
// while it stays valid: a webhook configuration whose caBundle holds it (out-of-cluster development)
// keeps trusting the webhook after a restart; a new CA on every start made the API server distrust
// the restarted webhook, and with failurePolicy Ignore the next labelled pod went uninjected, silently.
// The folder is 0700 and the key 0600, both owned by the user who runs the webhook.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, type KeyPairPem } from './certs.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
/** How long a new development CA is valid. */
export const DEV_CA_DAYS = 30;

/** The folder of the development CA: per user, under the temporary folder (TMPDIR). */
export function devCaDir(): string {
  return join(tmpdir(), `pando-webhook-dev-ca-${process.getuid?.() ?? 'user'}`);
}

/** The CA certificate file: what a webhook configuration's caBundle needs (`base64 -w0 FILE`). */
export function devCaCertFile(dir = devCaDir()): string {
  return join(dir, 'ca.crt');
}

export interface DevCa {
  ca: KeyPairPem;
  certFile: string;
  keyFile: string;
  /** True when the CA of an earlier start was still valid and is used again. */
  reused: boolean;
}

function usable(certPem: string, keyPem: string, now: Date): boolean {
  try {
    const cert = new X509Certificate(certPem);
    // At least a day left: the serving certificate issued from it is valid for a day.
    return new Date(cert.validFrom) <= now && new Date(cert.validTo).getTime() - now.getTime() > DAY_MS && cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** Reads the development CA from `dir`, or makes and stores a new one when it is missing, expiring or broken. */
export async function loadOrCreateDevCa(now: Date, dir = devCaDir()): Promise<DevCa> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to another user (uid ${st.uid}): set TMPDIR to a folder of your own`);
  chmodSync(dir, 0o700);
  const certFile = devCaCertFile(dir);
  const keyFile = join(dir, 'ca.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const ca = { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
    if (usable(ca.certPem, ca.keyPem, now)) {
      chmodSync(keyFile, 0o600);
      return { ca, certFile, keyFile, reused: true };
    }
  }
  const issued = await createCa('pando-webhook development CA', now, DEV_CA_DAYS);
  const ca = { certPem: issued.certPem, keyPem: issued.keyPem };
  // Key first, each written beside its place and renamed: a reader never sees a new cert with an old key.
  writeFileSync(`${keyFile}.tmp`, ca.keyPem, { mode: 0o600 });
  renameSync(`${keyFile}.tmp`, keyFile);
  writeFileSync(`${certFile}.tmp`, ca.certPem, { mode: 0o644 });
  renameSync(`${certFile}.tmp`, certFile);
  return { ca, certFile, keyFile, reused: false };
}
