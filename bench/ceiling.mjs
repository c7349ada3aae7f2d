// The ceiling of the benchmark: the least a Node HTTPS server can do for an admission call. It reads
// the whole body (the API server always sends one) and answers a fixed AdmissionReview: no parsing,
// no framework, no logging. Same certificate, TLS settings and keep-alive as the webhook.
// Plain JavaScript, so its cold start pays no TypeScript stripping. Usage: node ceiling.mjs PORT CERT KEY
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, certFile, keyFile] = process.argv.slice(2);
const answer = Buffer.from(JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  response: { uid: '00000000-0000-4000-8000-000000000000', allowed: true, auditAnnotations: { reason: 'ceiling' } },
}));

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2' }, (req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': answer.length });
    res.end(answer);
  });
});
server.keepAliveTimeout = 95_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
