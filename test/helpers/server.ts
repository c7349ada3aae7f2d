import { Registry } from 'prom-client';
import type { Config } from '../../app/config.ts';
import { createMetrics, type Metrics } from '../../app/server/metrics.ts';
import { buildServer, type ServerDeps } from '../../app/server/server.ts';
import { configFor } from './golden.ts';

export function testServer(env: Record<string, string> = {}, deps: Partial<ServerDeps> = {}) {
  const config: Config = configFor(env);
  const metrics: Metrics = createMetrics(new Registry(), { version: 'test', sidecarVersion: config.sidecar.version }, false);
  const app = buildServer(config, { metrics, logger: false, ...deps });
  return { app, metrics, config };
}

export function podReview(pod: unknown, overrides: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '5d6f1a54-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      object: pod,
      ...overrides,
    },
  };
}

export function labelledPod(extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', labels: { 'pandocore.xyz/protect': 'true' } },
    spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] },
    ...extra,
  };
}
