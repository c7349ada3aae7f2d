// Manifests through the webhook's core, without a cluster. Pure: no I/O. A Pod goes in as the CREATE
// request the API server would send; a workload's pod template goes in as the pod it will become
// (namespace from the object) and the mutated pod is written back into the template; an
// AdmissionReview goes in as it is, and its object comes out patched.

import fastJsonPatch, { type Operation } from 'fast-json-patch';
import type { AdmissionRequest, ObjectMeta, Pod } from '../admission/types.ts';
import type { NamespaceReadiness } from '../inject/decide.ts';
import type { Reason } from '../inject/reasons.ts';
import { review } from '../inject/review.ts';
import type { InjectionPlan } from '../inject/sidecar.ts';

/** Where each kind keeps its pod template. */
const TEMPLATE_PATHS: Record<string, readonly string[]> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export const WORKLOAD_KINDS = Object.keys(TEMPLATE_PATHS);

export interface ObjectResult {
  /** Position: document index, then List item index when the document is a List. */
  index: string;
  kind: string;
  name: string;
  namespace: string;
  /** What went through the core: a pod, a workload's pod template, an AdmissionReview's request, or nothing. */
  target: 'pod' | 'pod-template' | 'admission-review' | 'none';
  reason: Reason | 'not-a-workload';
  message: string;
  warnings: string[];
  patch: Operation[];
  /** The sidecar's mode, when one was injected. */
  mode?: string;
}

export interface InjectOptions {
  plan: InjectionPlan;
  /** Namespace of objects that name none (kubectl's current namespace). */
  defaultNamespace: string;
  /** What is known about namespaces (the webhook's namespace check); absent: not checked. */
  readiness?: ReadonlyMap<string, NamespaceReadiness>;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function metaOf(object: Json): ObjectMeta {
  return isObject(object.metadata) ? (object.metadata as ObjectMeta) : {};
}

function nameOf(meta: ObjectMeta): string {
  return meta.name ?? (meta.generateName ? `${meta.generateName}*` : '');
}

function applyPatch<T>(object: T, patch: Operation[]): T {
  return patch.length === 0 ? object : fastJsonPatch.applyPatch(structuredClone(object), patch, true, false).newDocument;
}

function podRequest(pod: Pod, namespace: string): AdmissionRequest {
  return {
    uid: '00000000-0000-0000-0000-00000000cafe',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    requestResource: { group: '', version: 'v1', resource: 'pods' },
    name: pod.metadata?.name,
    namespace,
    operation: 'CREATE',
    object: pod,
    oldObject: null,
    dryRun: false,
  };
}

function contextFor(namespace: string | undefined, options: InjectOptions) {
  const known = namespace === undefined ? undefined : options.readiness?.get(namespace);
  return known ? { namespace: known } : {};
}

/** The pod as the API server hands it to the webhook: its namespace filled in. */
function asCreatedPod(pod: Json, namespace: string): Pod {
  return { ...pod, metadata: { ...metaOf(pod), namespace } } as Pod;
}

function injectPod(pod: Json, namespace: string, options: InjectOptions) {
  const created = asCreatedPod(pod, namespace);
  const outcome = review(podRequest(created, namespace), options.plan, contextFor(namespace, options));
  const patched = applyPatch(created, outcome.patch) as Json;
  // The namespace was ours to fill in, not the author's: leave the manifest as it was written.
  if (metaOf(pod).namespace === undefined) delete (patched.metadata as Json).namespace;
  return { outcome, patched };
}

function templateOf(object: Json, path: readonly string[]): { parent: Json; key: string; template: Json } | undefined {
  let parent: Json = object;
  for (const key of path.slice(0, -1)) {
    const next = parent[key];
    if (!isObject(next)) return undefined;
    parent = next;
  }
  const key = path[path.length - 1]!;
  const template = parent[key];
  return isObject(template) ? { parent, key, template } : undefined;
}

function result(index: string, object: Json, namespace: string, rest: Omit<ObjectResult, 'index' | 'kind' | 'name' | 'namespace'>): ObjectResult {
  return { index, kind: typeof object.kind === 'string' ? object.kind : '?', name: nameOf(metaOf(object)), namespace, ...rest };
}

function injectReview(index: string, object: Json, options: InjectOptions): { object: unknown; results: ObjectResult[] } {
  const request = object.request as AdmissionRequest | undefined;
  if (!isObject(request)) {
    const r = result(index, object, '', { target: 'none', reason: 'error-invalid-object', message: 'AdmissionReview has no request', warnings: [], patch: [] });
    return { object: null, results: [r] };
  }
  const outcome = review(request, options.plan, contextFor(request.namespace, options));
  const target = request.object;
  const patched = target === null || target === undefined ? null : applyPatch(target, outcome.patch);
  const described = isObject(target) ? target : object;
  return {
    object: patched,
    results: [result(index, described, request.namespace ?? '', { target: 'admission-review', ...outcome, patch: outcome.patch })],
  };
}

/** One document (or List item): the object to print and what happened to it. */
export function injectObject(object: unknown, index: string, options: InjectOptions): { object: unknown; results: ObjectResult[] } {
  if (!isObject(object)) {
    return { object, results: [] };
  }
  const kind = object.kind;
  if (kind === 'AdmissionReview') return injectReview(index, object, options);
  const namespace = metaOf(object).namespace ?? options.defaultNamespace;
  if (kind === 'List' && Array.isArray(object.items)) {
    const results: ObjectResult[] = [];
    const items = object.items.map((item, i) => {
      const done = injectObject(item, `${index}.${i}`, options);
      results.push(...done.results);
      return done.object;
    });
    return { object: { ...object, items }, results };
  }
  if (kind === 'Pod' && (object.apiVersion === undefined || object.apiVersion === 'v1')) {
    const { outcome, patched } = injectPod(object, namespace, options);
    return { object: patched, results: [result(index, object, namespace, { target: 'pod', ...outcome })] };
  }
  const path = typeof kind === 'string' ? TEMPLATE_PATHS[kind] : undefined;
  const found = path ? templateOf(object, path) : undefined;
  if (!found) {
    const message = path ? `${String(kind)} has no pod template at ${path.join('.')}` : `${String(kind ?? 'object without kind')} has no pod template`;
    return { object, results: [result(index, object, namespace, { target: 'none', reason: 'not-a-workload', message, warnings: [], patch: [] })] };
  }
  const { outcome, patched } = injectPod(found.template, namespace, options);
  // Write back into a copy; the template is what the workload's controller copies into each pod.
  const copy = structuredClone(object);
  const copyFound = templateOf(copy, path!)!;
  copyFound.parent[copyFound.key] = patched;
  return { object: copy, results: [result(index, object, namespace, { target: 'pod-template', ...outcome })] };
}

/** Every namespace whose readiness the webhook would look up for these objects. */
export function namespacesOf(objects: readonly unknown[], defaultNamespace: string): string[] {
  const found = new Set<string>();
  const visit = (object: unknown) => {
    if (!isObject(object)) return;
    if (object.kind === 'List' && Array.isArray(object.items)) return object.items.forEach(visit);
    if (object.kind === 'AdmissionReview') {
      const ns = isObject(object.request) ? object.request.namespace : undefined;
      if (typeof ns === 'string' && ns) found.add(ns);
      return;
    }
    found.add(metaOf(object).namespace ?? defaultNamespace);
  };
  objects.forEach(visit);
  return [...found].sort();
}

export function injectAll(objects: readonly unknown[], options: InjectOptions): { objects: unknown[]; results: ObjectResult[] } {
  const out: unknown[] = [];
  const results: ObjectResult[] = [];
  objects.forEach((object, i) => {
    const done = injectObject(object, String(i), options);
    out.push(done.object);
    results.push(...done.results);
  });
  return { objects: out, results };
}
