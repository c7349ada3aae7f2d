// The webhook Deployment. Written as a plain ApiObject typed by kubernetes-models rather than
// cdk8s-plus's Deployment: that one adds fields nobody asked for here (its own startupProbe, a
// cdk8s.io/metadata.addr selector label, fsGroupChangePolicy, dnsPolicy, hostNetwork,
// setHostnameAsFQDN, minReadySeconds, progressDeadlineSeconds, strategy percentages), and every
// field of this object is one we chose (a chart test lists them).
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { IDeploymentSpec } from 'kubernetes-models/apps/v1/DeploymentSpec';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import { ENV, PATH_HEALTHZ, PATH_READYZ } from '../app/contract.ts';
import { isEmpty, present } from './binding.ts';
import { NAMES, type PandoContext } from './context.ts';
import { EXISTING_LICENSE, licenseSource } from './license-secret.ts';
import { ROLLOUT_ENABLED, rolloutEnabled } from './rollout-config-map.ts';
import type { Values } from './values.ts';
import { namespaceSelectorJson, objectSelectorJson, sortedJson } from './webhook-configuration.ts';

// The liveness endpoint on the metrics port: what the startup and the liveness probe ask.
const HEALTHZ = { path: PATH_HEALTHZ, port: 'metrics', scheme: 'HTTP' } as const;

// PANDO_BODY_TIMEOUT_MS per second of the webhook's timeoutSeconds (5 s, the default: 2000 ms, the
// webhook's own default).
const BODY_TIMEOUT_MS_PER_TIMEOUT_SECOND = 400;

export const TLS_MOUNT = '/etc/pando/tls';
/** The webhook exits at start when its two listeners share a port (app/config.ts). */
export const PORTS_CLASH = 'securePort and metricsPort must differ';

export interface WebhookDeploymentProps {
  readonly ctx: PandoContext;
  /** Name of the webhook's ServiceAccount. @default pando-webhook */
  readonly serviceAccountName?: string;
}

export { sortedJson };

export function webhookImage(ctx: PandoContext): string {
  const { image } = ctx.values;
  return ctx.b.str(
    'printf "%s%s" $.Values.image.repository (ternary (print "@" $.Values.image.digest) (print ":" (default $.Chart.AppVersion $.Values.image.tag)) (ne $.Values.image.digest ""))',
    `${image.repository}${image.digest ? `@${image.digest}` : `:${image.tag || ctx.appVersion}`}`,
  );
}

/** [registry/]repository:tag[@digest] of the injected sidecar. */
export function sidecarImage(ctx: PandoContext): string {
  const { image } = ctx.values.sidecar;
  return ctx.b.str(
    'printf "%s%s:%s%s" (ternary (print $.Values.sidecar.image.registry "/") "" (ne $.Values.sidecar.image.registry "")) $.Values.sidecar.image.repository $.Values.sidecar.image.tag (ternary (print "@" $.Values.sidecar.image.digest) "" (ne $.Values.sidecar.image.digest ""))',
    `${image.registry ? `${image.registry}/` : ''}${image.repository}:${image.tag}${image.digest ? `@${image.digest}` : ''}`,
  );
}

export class WebhookDeployment extends Construct {
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: WebhookDeploymentProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    if (v.replicas < 1) throw new Error(`replicas must be at least 1 (got ${v.replicas})`);
    if (!b.helm && v.securePort === v.metricsPort) throw new Error(`${PORTS_CLASH} (both ${v.securePort})`);
    const certManager = v.tls.certManager;
    const selfSignedOnly = <T>(item: T) => b.when('not $.Values.tls.certManager', !certManager, item);
    const certManagerOnly = <T>(item: T) => b.when('$.Values.tls.certManager', certManager, item);

    const env = present<IEnvVar>([
      { name: ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: ENV.port, value: b.str('$.Values.securePort', String(v.securePort)) },
      { name: ENV.metricsPort, value: b.str('$.Values.metricsPort', String(v.metricsPort)) },
      { name: ENV.defaultMode, value: b.str('$.Values.defaultMode', v.defaultMode) },
      { name: ENV.excludedNamespaces, value: b.str('join "," $.Values.excludedNamespaces', v.excludedNamespaces.join(',')) },
      { name: ENV.sidecarImage, value: sidecarImage(ctx) },
      // The version annotation comes from the tag, also when the image is pinned by digest.
      { name: ENV.sidecarVersion, value: b.str('$.Values.sidecar.image.tag', v.sidecar.image.tag) },
      { name: ENV.sidecarPullPolicy, value: b.str('$.Values.sidecar.image.pullPolicy', v.sidecar.image.pullPolicy) },
      { name: ENV.sidecarPullSecrets, value: b.str('join "," $.Values.sidecar.imagePullSecrets', v.sidecar.imagePullSecrets.join(',')) },
      { name: ENV.sidecarPodResources, value: b.str('$.Values.sidecar.podResources', v.sidecar.podResources) },
      { name: ENV.sidecarNative, value: b.str('$.Values.sidecar.native', String(v.sidecar.native)) },
      { name: ENV.sidecarResources, value: b.str('toJson $.Values.sidecar.resources', sortedJson(v.sidecar.resources)) },
      // Only when set: without it the Deployment is what it was.
      b.when('$.Values.sidecar.startupProbe', !isEmpty(v.sidecar.startupProbe), { name: ENV.sidecarStartupProbe, value: b.str('toJson $.Values.sidecar.startupProbe', sortedJson(v.sidecar.startupProbe ?? {})) }),
      { name: ENV.logLevel, value: b.str('$.Values.logLevel', v.logLevel) },
      // A body that has not arrived in 40 % of the API server's timeout is refused (issue 23 item 1),
      // so an honest review behind it still has the rest.
      { name: ENV.bodyTimeoutMs, value: b.str(`mul $.Values.timeoutSeconds ${BODY_TIMEOUT_MS_PER_TIMEOUT_SECOND}`, String(v.timeoutSeconds * BODY_TIMEOUT_MS_PER_TIMEOUT_SECOND)) },
      { name: ENV.namespaceCheck, value: b.str('$.Values.namespaceCheck', String(v.namespaceCheck)) },
      { name: ENV.namespaceSetupAuto, value: b.str('$.Values.namespaceSetup.auto', String(v.namespaceSetup.auto)) },
      { name: ENV.namespaceSetupSelector, value: b.str('$.Values.namespaceSetup.namespaceSelector', v.namespaceSetup.namespaceSelector) },
      { name: ENV.podName, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: ENV.licenseSecretName, value: licenseSource(ctx).name },
      { name: ENV.licenseSecretKey, value: licenseSource(ctx).key },
      { name: ENV.ownerDeployment, value: NAMES.app },
      {
        name: ENV.licenseCopyNamespaces,
        value: b.str(`ternary (join "," $.Values.protectedNamespaces) "" (${EXISTING_LICENSE})`, v.license.existingSecret.name ? v.protectedNamespaces.join(',') : ''),
      },
      { name: ENV.watchdog, value: b.str('$.Values.watchdog.enabled', String(v.watchdog.enabled)) },
      { name: ENV.watchdogHeal, value: b.str('$.Values.watchdog.heal', v.watchdog.heal) },
      { name: ENV.watchdogRestartStale, value: b.str('$.Values.watchdog.restartStale', String(v.watchdog.restartStale)) },
      { name: ENV.watchdogRestartsPerMinute, value: b.str('$.Values.watchdog.restartsPerMinute', String(v.watchdog.restartsPerMinute)) },
      { name: ENV.rollout, value: b.str(ROLLOUT_ENABLED, String(rolloutEnabled(v))) },
      { name: ENV.rolloutMaxConcurrent, value: b.str('$.Values.rollout.maxConcurrent', String(v.rollout.maxConcurrent)) },
      { name: ENV.rolloutSoakSeconds, value: b.str('$.Values.rollout.soakSeconds', String(v.rollout.soakSeconds)) },
      { name: ENV.rolloutReadyDeadlineSeconds, value: b.str('$.Values.rollout.readyDeadlineSeconds', String(v.rollout.readyDeadlineSeconds)) },
      { name: ENV.rolloutCanarySelector, value: b.str('$.Values.rollout.canary', v.rollout.canary) },
      // The webhook configuration's own selectors: the watchdog skips the pods they leave out.
      { name: ENV.webhookNamespaceSelector, value: namespaceSelectorJson(ctx) },
      { name: ENV.webhookObjectSelector, value: objectSelectorJson() },
      { name: ENV.serviceName, value: NAMES.app },
      { name: ENV.webhookConfigName, value: NAMES.webhookConfiguration },
      { name: ENV.tlsSecretName, value: NAMES.tlsSecret },
      selfSignedOnly({ name: ENV.tlsSelfSigned, value: 'true' }),
      selfSignedOnly({ name: ENV.tlsCaValidityDays, value: b.str('$.Values.tls.caValidityDays', String(v.tls.caValidityDays)) }),
      selfSignedOnly({ name: ENV.tlsLeafValidityDays, value: b.str('$.Values.tls.leafValidityDays', String(v.tls.leafValidityDays)) }),
      selfSignedOnly({ name: ENV.tlsRotateAtPercent, value: b.str('$.Values.tls.rotateAtPercent', String(v.tls.rotateAtPercent)) }),
      selfSignedOnly({
        name: ENV.tlsExtraSans,
        value: b.str('join "," (concat $.Values.tls.extraDnsNames $.Values.tls.extraIpAddresses)', [...v.tls.extraDnsNames, ...v.tls.extraIpAddresses].join(',')),
      }),
      certManagerOnly({ name: ENV.tlsCertFile, value: `${TLS_MOUNT}/tls.crt` }),
      certManagerOnly({ name: ENV.tlsKeyFile, value: `${TLS_MOUNT}/tls.key` }),
      ...b.spliceList('$.Values.extraEnv', v.extraEnv as IEnvVar[]),
    ]);

    const spec: IDeploymentSpec = {
      // With the autoscaler on it owns the replica count: a rendered replicas would reset it on every upgrade.
      replicas: b.optionalBlock('and (not $.Values.hpa.enabled) $.Values.replicas', v.hpa.enabled ? undefined : v.replicas),
      revisionHistoryLimit: 5,
      selector: { matchLabels: { ...ctx.selectorLabels } },
      // One extra pod during a rollout and none missing: the API server always has a ready endpoint.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: { ...ctx.labels, ...b.spliceMap('$.Values.podLabels', v.podLabels) },
          annotations: b.optionalBlock('$.Values.podAnnotations', v.podAnnotations),
        },
        spec: {
          serviceAccountName: props.serviceAccountName ?? NAMES.app,
          // The webhook reads namespaces' setup and (self-signed) keeps its Secret and caBundle.
          automountServiceAccountToken: true,
          imagePullSecrets: b.optionalBlock('$.Values.imagePullSecrets', v.imagePullSecrets),
          priorityClassName: b.optionalBlock('$.Values.priorityClassName', v.priorityClassName),
          schedulerName: b.optionalBlock('$.Values.schedulerName', v.schedulerName),
          // hostNetwork (cert-manager's webhook chart has the same pair): the pod keeps cluster DNS.
          hostNetwork: b.optionalBlock('$.Values.hostNetwork', v.hostNetwork || undefined),
          dnsPolicy: b.optionalBlock('ternary "ClusterFirstWithHostNet" "" $.Values.hostNetwork', v.hostNetwork ? 'ClusterFirstWithHostNet' : undefined),
          nodeSelector: b.optionalBlock('$.Values.nodeSelector', v.nodeSelector),
          tolerations: b.optionalBlock('$.Values.tolerations', v.tolerations) as never,
          affinity: b.optionalBlock('$.Values.affinity', v.affinity),
          topologySpreadConstraints: b.optionalBlock('$.Values.topologySpreadConstraints', v.topologySpreadConstraints) as never,
          terminationGracePeriodSeconds: b.scalar('$.Values.terminationGracePeriodSeconds', v.terminationGracePeriodSeconds),
          securityContext: b.optionalBlock('$.Values.podSecurityContext', v.podSecurityContext),
          containers: [
            {
              name: 'webhook',
              image: webhookImage(ctx),
              imagePullPolicy: b.str('$.Values.image.pullPolicy', v.image.pullPolicy) as Values['image']['pullPolicy'],
              ports: [
                // The probes name these ports, so they follow securePort and metricsPort.
                { name: 'https', containerPort: b.scalar('$.Values.securePort', v.securePort), protocol: 'TCP' },
                { name: 'metrics', containerPort: b.scalar('$.Values.metricsPort', v.metricsPort), protocol: 'TCP' },
              ],
              env,
              resources: b.block('$.Values.resources', v.resources),
              // Before it listens the webhook reads its owner, its certificates and the namespace cache
              // from the API server: a slow API server makes that take more than the liveness probe's
              // 30 s, and without a startup probe the kubelet would then restart it over and over. The
              // startup probe gives it 2 minutes; liveness and readiness start once it has passed.
              startupProbe: { httpGet: HEALTHZ, periodSeconds: 2, failureThreshold: 60 },
              readinessProbe: { httpGet: { path: PATH_READYZ, port: 'https', scheme: 'HTTPS' }, periodSeconds: 5, failureThreshold: 2 },
              livenessProbe: { httpGet: HEALTHZ, periodSeconds: 10, failureThreshold: 3 },
              securityContext: b.optionalBlock('$.Values.containerSecurityContext', v.containerSecurityContext),
              volumeMounts: present([
                { name: 'tmp', mountPath: '/tmp' },
                certManagerOnly({ name: 'tls', mountPath: TLS_MOUNT, readOnly: true }),
              ]),
            },
          ],
          volumes: present([
            { name: 'tmp', emptyDir: { sizeLimit: '16Mi' } },
            certManagerOnly({ name: 'tls', secret: { secretName: NAMES.tlsSecret } }),
          ]),
        },
      },
    };
    this.apiObject = new ApiObject(this, 'resource', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec,
    });
  }
}
