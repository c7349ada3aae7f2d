// What injection adds, computed once from the Config: the sidecar container for each mode, the
// annotations, and the config hash that marks which injection config a pod carries.

import { createHash } from 'node:crypto';
import type { Config, SidecarResources } from '../config.ts';
import {
  LICENSE_SECRET_KEY,
  LICENSE_SECRET_NAME,
  MODES,
  SIDECAR_ENV_LICENSE,
  SIDECAR_ENV_MODE,
  SIDECAR_NAME,
  SIDECAR_SERVICE_ACCOUNT,
  type Mode,
} from '../contract.ts';
import type { Container, EnvVar, VolumeMount } from '../admission/types.ts';

/** Where the API server's ServiceAccount admission mounts the token in every container. */
export const TOKEN_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface InjectionPlan {
  readonly version: string;
  readonly configHash: string;
  readonly native: boolean;
  readonly defaultMode: Mode;
  readonly ownNamespace: string;
  readonly excludedNamespaces: ReadonlySet<string>;
  readonly resources: SidecarResources;
  /** Operating systems the sidecar image runs on (spec.os.name values); only linux today. */
  readonly operatingSystems: ReadonlySet<string>;
  /** With pod-level resources that leave no room: skip the pod, or grow them by the sidecar's. */
  readonly podResources: 'skip' | 'grow';
  /** Pull Secrets of the sidecar image, added to the pod's imagePullSecrets. */
  readonly imagePullSecrets: readonly string[];
  /** A fresh sidecar container for the mode, with the token mount when the pod has one. */
  sidecar(mode: Mode, tokenMount: VolumeMount | undefined): Container;
}

function sidecarTemplate(config: Config): Omit<Container, 'env'> {
  const { sidecar } = config;
  return {
    name: SIDECAR_NAME,
    image: sidecar.image,
    imagePullPolicy: sidecar.pullPolicy,
    ...(sidecar.native ? { restartPolicy: 'Always' } : {}),
    resources: {
      requests: { ...sidecar.resources.requests },
      limits: { ...sidecar.resources.limits },
    },
    // Compliant with the Pod Security "restricted" level on its own, whatever the pod sets.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: sidecar.runAsUser,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
    // Opt-in (sidecar.startupProbe): the kubelet then starts the app once the sidecar is ready, not
    // once it runs. Absent when unset, so the template, and the config hash of every pod injected
    // without it, stay what they were.
    ...(sidecar.startupProbe ? { startupProbe: structuredClone(sidecar.startupProbe) as Record<string, unknown> } : {}),
  };
}

function sidecarEnv(mode: Mode) {
  return [
    { name: SIDECAR_ENV_MODE, value: mode },
    {
      name: SIDECAR_ENV_LICENSE,
      valueFrom: { secretKeyRef: { name: LICENSE_SECRET_NAME, key: LICENSE_SECRET_KEY } },
    },
  ];
}

/** Short, stable hash of everything that shapes the injected sidecar (not the per-pod mode). */
export function configHash(config: Config): string {
  const shape = {
    template: sidecarTemplate(config),
    version: config.sidecar.version,
    env: sidecarEnv('monitor').map((e) => e.name),
    serviceAccount: SIDECAR_SERVICE_ACCOUNT,
  };
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 12);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

export function planInjection(config: Config): InjectionPlan {
  // Built once: everything below the container's top level depends only on the config (and mode).
  const template = deepFreeze(sidecarTemplate(config));
  const envByMode = new Map(MODES.map((mode) => [mode, deepFreeze(sidecarEnv(mode))]));
  return Object.freeze({
    version: config.sidecar.version,
    configHash: configHash(config),
    native: config.sidecar.native,
    defaultMode: config.defaultMode,
    ownNamespace: config.namespace,
    excludedNamespaces: new Set(config.excludedNamespaces),
    resources: config.sidecar.resources,
    // A Windows image would add "windows" here, with its own template (no Linux securityContext).
    operatingSystems: new Set(['linux']),
    podResources: config.sidecar.podResources,
    imagePullSecrets: Object.freeze([...config.sidecar.imagePullSecrets]),
    sidecar(mode: Mode, tokenMount: VolumeMount | undefined): Container {
      // A fresh top level per pod over frozen, shared parts: nothing can change the plan through a
      // mutated pod, and diff() deep-copies every value it puts into a patch, so no patch shares them.
      const container: Container = { ...(template as Container), env: envByMode.get(mode) as EnvVar[] };
      if (tokenMount) container.volumeMounts = [{ ...tokenMount }];
      return container;
    },
  });
}
