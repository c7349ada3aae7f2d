// The certificate questions of `pando doctor`, with node:crypto's X509Certificate: is the served chain
// signed by a CA of the webhook configuration's caBundle, and is it valid for the host dialled.

import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export type ChainVerdict = { trusted: true; by: X509Certificate } | { trusted: false; reason: string };

/** Whether a CA of the bundle signed the leaf, directly or through the served intermediates. */
export function verifyChain(chainPem: readonly string[], bundlePem: readonly string[]): ChainVerdict {
  if (chainPem.length === 0) return { trusted: false, reason: 'no certificate was served' };
  if (bundlePem.length === 0) return { trusted: false, reason: 'caBundle holds no certificate' };
  const chain = chainPem.map((p) => new X509Certificate(p));
  const roots = bundlePem.map((p) => new X509Certificate(p));
  const signedBy = (child: X509Certificate, parent: X509Certificate) => child.checkIssued(parent) && child.verify(parent.publicKey);
  let current = chain[0]!;
  for (let depth = 0; depth < 6; depth++) {
    const root = roots.find((r) => signedBy(current, r));
    if (root) return { trusted: true, by: root };
    const next = chain.find((c) => c !== current && signedBy(current, c));
    if (!next) break;
    current = next;
  }
  const issuer = chain[0]!.issuer.replace(/\n/g, ', ');
  const bundle = roots.map((r) => r.subject.replace(/\n/g, ', ')).join('; ');
  return { trusted: false, reason: `served certificate issued by "${issuer}" is not signed by the caBundle (${bundle})` };
}

export function nameMatches(cert: X509Certificate, host: string): boolean {
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}
