// A second mutating webhook for the reinvocation scenario: an HTTPS server on 127.0.0.1 that adds a
// container and an annotation to pods, as another injector (a mesh proxy, a log shipper) would.
import { createServer, type Server } from 'node:https';
import type { KeyPairPem } from '../../app/tls/certs.ts';

export const REINVOKER_CONTAINER = 'e2e-helper';
export const REINVOKER_ANNOTATION = 'e2e.pandocore.xyz/helper';

export interface Reinvoker {
  url: string;
  /** The pods it saw, in order: name and container/initContainer names at the time. */
  seen: { containers: string[]; initContainers: string[] }[];
  close(): Promise<void>;
}

export async function startReinvoker(serving: KeyPairPem): Promise<Reinvoker> {
  const seen: Reinvoker['seen'] = [];
  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const pod = review.request.object;
      seen.push({
        containers: (pod.spec.containers ?? []).map((c: any) => c.name),
        initContainers: (pod.spec.initContainers ?? []).map((c: any) => c.name),
      });
      const patch: unknown[] = [];
      if (!pod.spec.containers.some((c: any) => c.name === REINVOKER_CONTAINER)) {
        patch.push({ op: 'add', path: '/spec/containers/-', value: { name: REINVOKER_CONTAINER, image: 'registry.invalid/helper:1' } });
      }
      if (!pod.metadata.annotations) patch.push({ op: 'add', path: '/metadata/annotations', value: {} });
      if (pod.metadata.annotations?.[REINVOKER_ANNOTATION] === undefined) {
        patch.push({ op: 'add', path: `/metadata/annotations/${REINVOKER_ANNOTATION.replace('/', '~1')}`, value: 'added' });
      }
      const response: Record<string, unknown> = { uid: review.request.uid, allowed: true };
      if (patch.length > 0) {
        response.patchType = 'JSONPatch';
        response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `https://127.0.0.1:${port}/mutate`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
