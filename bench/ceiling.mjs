// The ceiling of the benchmark: the least a Node HTTPS server can do for an admission call. It reads
// the whole body (the API server always sends one) and answers a fixed AdmissionReview: no parsing,
// no framework, no logging. Same certificate, TLS settings and keep-alive as the webhook.
// Plain JavaScript, so its cold start pays no TypeScript stripping. Usage: node ceiling.mjs PORT CERT KEY
//
// For `npm run bench -- --cluster` (bench/cluster.ts), where the API server is the client:
// - CEILING_ECHO_UID=1: answers with the request's uid (the API server rejects any other), found by
//   a byte search for the first `"uid":"` (request.uid is the first field the API server writes).
// - CEILING_PATCH_FILE=FILE: answers this fixed JSONPatch (a JSON array), so the API server applies it;
//   each `__KUBE_API_ACCESS__` in it becomes the pod's own token volume name (the ServiceAccount
//   admission plugin names it per pod: `kube-api-access-` and a random suffix), found by a byte search.
// - CEILING_RECORD_FILE=FILE: writes the first server-side dry-run review it gets to FILE (once).
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, certFile, keyFile] = process.argv.slice(2);
const echoUid = process.env.CEILING_ECHO_UID === '1';
const patchFile = process.env.CEILING_PATCH_FILE;
let recordFile = process.env.CEILING_RECORD_FILE;
const patchText = patchFile ? readFileSync(patchFile, 'utf8') : undefined;
const patchFor = (volume) => ({ patchType: 'JSONPatch', patch: Buffer.from(volume ? patchText.replaceAll('__KUBE_API_ACCESS__', volume) : patchText).toString('base64') });
const answerFor = (uid, volume) => Buffer.from(JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  response: { uid, allowed: true, ...(patchText ? patchFor(volume) : {}), auditAnnotations: { reason: 'ceiling' } },
}));
const fixed = answerFor('00000000-0000-4000-8000-000000000000');
const UID = Buffer.from('"uid":"');
const VOLUME = Buffer.from('"kube-api-access-');

/** The string value starting right after `marker` (or, with `keep`, the marker's own string from its quote). */
function stringAfter(body, marker, keep = false) {
  const at = body.indexOf(marker);
  if (at < 0) return undefined;
  const end = body.indexOf(34, at + marker.length);
  return end < 0 ? undefined : body.toString('latin1', keep ? at + 1 : at + marker.length, end);
}

const handler = (req, res) => {
  const chunks = echoUid || recordFile ? [] : undefined;
  req.on('data', (chunk) => chunks?.push(chunk));
  req.on('end', () => {
    let answer = fixed;
    if (chunks) {
      const body = Buffer.concat(chunks);
      if (recordFile && body.includes('"dryRun":true')) {
        writeFileSync(recordFile, body);
        recordFile = undefined;
      }
      const uid = echoUid ? stringAfter(body, UID) : undefined;
      if (uid) answer = answerFor(uid, patchText ? stringAfter(body, VOLUME, true) : undefined);
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': answer.length });
    res.end(answer);
  });
};

// HTTP/1.1 only: node:https announces http/1.1 in ALPN (its default), as the webhook's server does.
const tls = { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2' };
const server = createServer(tls, handler);
server.keepAliveTimeout = 95_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  // Keep-alive connections the client holds open would hold close() back.
  setTimeout(() => process.exit(0), 200).unref();
});
