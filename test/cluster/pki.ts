// Certificates of the e2e control plane. The CA and serving certificates come from the product's
// own app/tls/certs.ts; only the client certificate (which the product never needs) is spelled here.
// @peculiar/x509 needs the Reflect metadata API loaded before it.
import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createCa, issueServingCert, type KeyPairPem } from '../../app/tls/certs.ts';

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface ClusterPki {
  ca: KeyPairPem;
  apiserver: KeyPairPem;
  /** CN=admin, O=system:masters: the kubeconfig user and the controller-manager's identity. */
  admin: KeyPairPem;
  /** Signs and verifies service-account tokens. */
  serviceAccount: { privateKeyPem: string; publicKeyPem: string };
}

/** A client certificate (CN=user, O=groups) signed by `ca`. */
export async function issueClientCert(ca: KeyPairPem, user: string, groups: string[], days: number): Promise<KeyPairPem> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), ALGORITHM, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    subject: [`CN=${user}`, ...groups.map((g) => `O=${g}`)].join(', '),
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n` };
}

/** Everything the control plane needs, valid for `days`. */
export async function createClusterPki(days = 30): Promise<ClusterPki> {
  const now = new Date();
  const ca = await createCa('pando-e2e-ca', now, days);
  // The API server's in-cluster names are in the SAN list for completeness; tests only dial 127.0.0.1.
  const apiserver = await issueServingCert(
    ca,
    ['127.0.0.1', 'localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', '10.0.0.1'],
    now,
    days,
  );
  const admin = await issueClientCert(ca, 'admin', ['system:masters'], days);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ca,
    apiserver,
    admin,
    serviceAccount: {
      privateKeyPem: sa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      publicKeyPem: sa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    },
  };
}
