// Serving certificate loading and hot reload. A Secret volume is updated by swapping a symlink, so
// the directory is watched and, as a fallback, polled. A new pair is applied with
// setSecureContext: open keep-alive connections stay up, new handshakes get the new certificate.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import type { TlsFiles } from '../config.ts';

export interface ServingPair {
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly fingerprint: string;
}

/** Parses and checks a certificate chain and its key; throws an Error that says what is wrong. */
export function parseServingPair(certPem: string, keyPem: string): ServingPair {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new Error(`certificate is not a PEM X.509 certificate (${(err as Error).message})`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new Error(`key is not a PEM private key (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw new Error('key does not match the certificate');
  return {
    certPem,
    keyPem,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint: cert.fingerprint256,
  };
}

export function isValidAt(pair: ServingPair | undefined, now: Date): boolean {
  return pair !== undefined && pair.notBefore <= now && now < pair.notAfter;
}

export function secureContextOptions(pair: ServingPair): SecureContextOptions {
  return { cert: pair.certPem, key: pair.keyPem };
}

export interface CertReloaderOptions {
  files: TlsFiles;
  /** Called with every new valid pair (not with the same pair twice). */
  onChange: (pair: ServingPair) => void;
  /** Called when the files cannot be read or do not form a valid pair; the old pair stays. */
  onError: (error: Error) => void;
  pollIntervalMs?: number;
}

export interface CertReloader {
  /** Reads the files now; returns the pair in use afterwards. */
  reload(): ServingPair | undefined;
  current(): ServingPair | undefined;
  start(): void;
  stop(): void;
}

export function createCertReloader(options: CertReloaderOptions): CertReloader {
  let current: ServingPair | undefined;
  let lastError = '';
  let watcher: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;

  function reload(): ServingPair | undefined {
    try {
      const certPem = readFileSync(options.files.certFile, 'utf8');
      const keyPem = readFileSync(options.files.keyFile, 'utf8');
      if (current && current.certPem === certPem && current.keyPem === keyPem) return current;
      const pair = parseServingPair(certPem, keyPem);
      current = pair;
      lastError = '';
      options.onChange(pair);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      // A half-written update (new cert, old key) is normal for a moment; report each cause once.
      if (error.message !== lastError) options.onError(error);
      lastError = error.message;
    }
    return current;
  }

  return {
    reload,
    current: () => current,
    start() {
      try {
        watcher = watch(dirname(options.files.certFile), () => {
          clearTimeout(debounce);
          debounce = setTimeout(reload, 100);
        });
        watcher.on('error', () => undefined);
      } catch {
        // No watch support (or the directory is missing): polling alone still reloads.
      }
      poll = setInterval(reload, options.pollIntervalMs ?? 10_000);
      poll.unref();
    },
    stop() {
      watcher?.close();
      clearInterval(poll);
      clearTimeout(debounce);
    },
  };
}

export const EXPIRY_WARNING_DAYS = 30;

/** A sentence for the log when the pair expires within 30 days (or has expired), else undefined. */
export function expiryWarning(pair: ServingPair, now: Date): string | undefined {
  const days = (pair.notAfter.getTime() - now.getTime()) / 86_400_000;
  if (days > EXPIRY_WARNING_DAYS) return undefined;
  if (days <= 0) return `serving certificate expired at ${pair.notAfter.toISOString()}: the API server cannot call this webhook`;
  return `serving certificate expires in ${Math.floor(days)} days (${pair.notAfter.toISOString()}) and has not been renewed`;
}
