// The parts of admission.k8s.io/v1 and core/v1 that the webhook reads. Objects arrive as raw JSON:
// the types document what we rely on and leave every other field untouched.

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface AdmissionRequest {
  uid: string;
  kind?: GroupVersionKind;
  resource?: GroupVersionResource;
  subResource?: string;
  name?: string;
  namespace?: string;
  operation?: Operation | string;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  [field: string]: unknown;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the RFC 6902 patch */
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  [field: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  [field: string]: unknown;
}

export interface Volume {
  name: string;
  projected?: { sources?: Array<Record<string, unknown>> };
  [field: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  serviceAccountName?: string;
  serviceAccount?: string;
  volumes?: Volume[];
  [field: string]: unknown;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: PodSpec;
  [field: string]: unknown;
}
