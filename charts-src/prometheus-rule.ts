// Optional Prometheus Operator PrometheusRule (prometheusRule.enabled; needs its CRD). The alerts
// are defined once below: the rule, and the runbook section of the chart README (alertRunbooks).
import { ApiObject, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import { NAMES, labelsWithExtra, type PandoContext } from './context.ts';

export interface PrometheusRuleProps {
  readonly ctx: PandoContext;
}

interface Alert {
  name: string;
  expr: (namespace: string) => string;
  for: string;
  severity: 'critical' | 'warning';
  summary: string;
  /** Prometheus template text; names the fix. */
  description: (namespace: string) => string;
  /** Runbook steps for the chart README (NS stands for the release namespace). */
  runbook: string[];
}

const ALERTS: Alert[] = [
  {
    name: 'PandoCoreUnprotectedPods',
    expr: () => 'sum by (namespace) (pandocore_unprotected_pods) > 0',
    for: '5m',
    severity: 'critical',
    summary: 'Labelled pods run without the PandoCore sidecar',
    description: () => '{{ $value }} labelled pod(s) in namespace {{ $labels.namespace }} run without the sidecar (created while the webhook was unreachable). Fix: kubectl get events -n {{ $labels.namespace }} --field-selector reason=SidecarMissing and run the restart each Event names, or set watchdog.heal=restart.',
    runbook: [
      'The watchdog found labelled pods without the sidecar that the webhook would inject now: they were created while the API server could not reach the webhook (failurePolicy Ignore).',
      '1. `kubectl get events -A --field-selector reason=SidecarMissing`: each Event names the pod or workload and the command that fixes it (`kubectl rollout restart deployment/NAME -n NAMESPACE`; bare pods: delete and create again).',
      '2. Find why the webhook was unreachable: `pando doctor` (endpoint, caBundle, certificate), `kubectl -n NS logs deployment/pando-webhook`.',
      '3. To let the watchdog restart Deployments, StatefulSets and DaemonSets itself (rate-limited): `--set watchdog.heal=restart`.',
    ],
  },
  {
    name: 'PandoCoreSidecarFailing',
    expr: () => 'sum by (namespace, reason) (pandocore_sidecar_failing_pods) > 0',
    // The kubelet retries pulls and restarts with back-off: a failure that lasts 5 minutes is not a blip.
    for: '5m',
    severity: 'critical',
    summary: 'Injected pods whose PandoCore sidecar the kubelet cannot start',
    description: () => '{{ $value }} injected pod(s) in namespace {{ $labels.namespace }} cannot start the sidecar ({{ $labels.reason }}); with a native sidecar the app does not start either. Fix: kubectl get events -n {{ $labels.namespace }} --field-selector reason=SidecarFailing names each pod, the kubelet\'s message and the fix; pando doctor lists them. Restarting does not help.',
    runbook: [
      'The watchdog found injected pods whose sidecar container the kubelet cannot start or keeps restarting, with the kubelet\'s reason as the `reason` label. A native sidecar that does not start also holds back the pod\'s app containers. The watchdog never restarts these workloads: a new pod would get the same sidecar.',
      '1. Find the pods: `kubectl get events -A --field-selector reason=SidecarFailing` (each names the pod, the kubelet\'s message and the fix), `pando doctor` (check `sidecar-failing`), or `kubectl get pods -A -l pandocore.xyz/protect=true` (STATUS `Init:ImagePullBackOff`, `Init:ErrImagePull`, `Init:CrashLoopBackOff`, `Init:Error`, `Init:CreateContainerConfigError`).',
      '2. `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, `ErrImageNeverPull`: the sidecar image cannot be pulled. `kubectl -n NAMESPACE describe pod POD` shows the pull error; a wrong `sidecar.image` (repository, tag or digest): correct it with `helm upgrade`, then delete the pod (its workload makes a new one with the corrected image); a missing pull Secret (`sidecar.imagePullSecrets`, needed in the pod\'s namespace): `pando setup-namespace NAMESPACE`, and the kubelet\'s next pull succeeds.',
      '3. `CreateContainerConfigError`: the sidecar\'s env cannot be built, usually the license Secret `pando-license` (or its key `license-key`) is missing in the pod\'s namespace: `pando setup-namespace NAMESPACE`; the kubelet retries and the same pod starts (seen on the e2e node about 7 s later).',
      '4. `CrashLoopBackOff` (a native sidecar shows `Init:Error` between restarts) or `OOMKilled`: the sidecar starts and exits. `kubectl -n NAMESPACE logs POD -c pando-sidecar --previous` says why (license key, mode); for `OOMKilled` raise `sidecar.resources.limits.memory`. A new sidecar version that does this: `helm rollback` the webhook.',
      '5. `CreateContainerError`, `RunContainerError` and the hook errors: the container runtime cannot create or start it; `kubectl -n NAMESPACE describe pod POD` shows the runtime\'s message.',
    ],
  },
  {
    name: 'PandoCoreCertificateExpiring',
    expr: () => 'min(pandocore_tls_cert_expiry_timestamp_seconds) - time() < 14 * 86400',
    for: '15m',
    severity: 'warning',
    summary: 'The PandoCore webhook serving certificate expires within 14 days',
    description: (ns) => `The webhook's serving certificate expires in {{ $value | humanizeDuration }}. Fix: self-signed: kubectl -n ${ns} annotate secret ${NAMES.tlsSecret} pandocore.xyz/rotate=now --overwrite; cert-manager: cmctl renew -n ${ns} ${NAMES.servingCertificate}.`,
    runbook: [
      'Self-signed mode rotates at 67 % of the lifetime by itself; an expiring certificate means rotation is failing or cert-manager is not renewing.',
      `1. Self-signed: \`kubectl -n NS annotate secret ${NAMES.tlsSecret} pandocore.xyz/rotate=now --overwrite\`, then check the webhook's log for \`PANDO_TLS\` codes.`,
      `2. cert-manager: \`kubectl -n NS get certificate ${NAMES.servingCertificate}\` and \`cmctl renew -n NS ${NAMES.servingCertificate}\`.`,
      '3. `pando doctor` shows the served certificate and its expiry.',
    ],
  },
  {
    name: 'PandoCoreCaBundleOutOfSync',
    expr: () => 'min(pandocore_cabundle_in_sync) == 0',
    for: '5m',
    severity: 'critical',
    summary: 'The webhook configuration does not trust the certificate the webhook serves',
    description: (ns) => `The caBundle of MutatingWebhookConfiguration ${NAMES.webhookConfiguration} does not verify the served certificate: the API server cannot call the webhook and labelled pods start without the sidecar. Fix: kubectl -n ${ns} rollout restart deployment/${NAMES.app}, then pando doctor.`,
    runbook: [
      'The API server rejects the webhook\'s TLS, so every labelled pod starts without the sidecar (the watchdog then reports them).',
      `1. \`pando doctor\`: the caBundle check names the mismatch.`,
      `2. Self-signed: \`kubectl -n NS rollout restart deployment/${NAMES.app}\` (the webhook re-syncs caBundle at start). cert-manager: check the cainjector (\`kubectl -n cert-manager logs deployment/cert-manager-cainjector\`).`,
    ],
  },
  {
    name: 'PandoCoreInjectionErrors',
    expr: () => 'sum(increase(pandocore_admission_requests_total{outcome="error"}[10m])) > 0',
    for: '10m',
    severity: 'warning',
    summary: 'The PandoCore webhook answers reviews with errors',
    description: (ns) => `Reviews end with outcome="error": those pods are created without the sidecar, with a warning. Fix: kubectl -n ${ns} logs deployment/${NAMES.app} and look up the PANDO_ error codes in the README.`,
    runbook: [
      'A review failed inside the webhook; the pod was allowed without the sidecar and its creator got a `pandocore:` warning.',
      `1. \`kubectl -n NS logs deployment/${NAMES.app}\`: the lines with \`reason: error-...\` carry the code, namespace and pod.`,
      '2. `pando inject -f POD.yaml` reproduces the answer offline with the same core.',
    ],
  },
  {
    name: 'PandoCoreWebhookAbsent',
    expr: (ns) => `absent(up{job="${NAMES.app}", namespace="${ns}"} == 1)`,
    for: '5m',
    severity: 'critical',
    summary: 'No PandoCore webhook is scraped',
    description: (ns) => `No scrape target of the webhook is up: with failurePolicy Ignore, labelled pods start without the sidecar. Fix: kubectl -n ${ns} rollout status deployment/${NAMES.app}; kubectl -n ${ns} get servicemonitor ${NAMES.app}.`,
    runbook: [
      'Prometheus sees no webhook: either none runs (pods start without the sidecar) or the ServiceMonitor does not match.',
      `1. \`kubectl -n NS rollout status deployment/${NAMES.app}\` and \`kubectl -n NS get pods -l app.kubernetes.io/name=${NAMES.app}\`.`,
      '2. If the pods run: `serviceMonitor.enabled=true` and `serviceMonitor.labels` must match your Prometheus\' `serviceMonitorSelector`.',
    ],
  },
  {
    name: 'PandoCoreRolloutPaused',
    expr: () => 'max(pandocore_rollout_paused) == 1',
    for: '1m',
    severity: 'warning',
    summary: 'The PandoCore sidecar rollout paused itself on a failing new sidecar',
    description: () => 'The sidecar rollout stopped cluster-wide: no further workload is restarted. Fix: pando rollout status names the workload, pod and reason (kubectl get events -A --field-selector reason=RolloutPaused); fix the sidecar (helm rollback, or a corrected version), then pando rollout resume.',
    runbook: [
      'The rollout restarted a workload for the new sidecar and one of its new pods failed (sidecar in CrashLoopBackOff, OOMKilled, ImagePullBackOff, ErrImagePull or another reason the watchdog counts as sidecar-failing such as CreateContainerConfigError, not Ready within `rollout.readyDeadlineSeconds`, or the Deployment past its `progressDeadlineSeconds`). It paused cluster-wide: no other workload is touched.',
      '1. `pando rollout status` (or `kubectl get events -A --field-selector reason=RolloutPaused`): which workload, which pod, why.',
      '2. `kubectl -n NAMESPACE describe pod POD` and `kubectl -n NAMESPACE logs POD -c pando-sidecar --previous`: why the new sidecar fails.',
      '3. Fix it: `helm rollback` of the webhook to the last good sidecar, or `helm upgrade` with a corrected version (or the resources / pull Secret it lacked).',
      '4. `pando rollout resume`: the rollout continues, canary first again for a new version. `pando rollout pause` stops it by hand at any time.',
    ],
  },
];

/** The rule's alerts; in helm mode Prometheus' own {{ ... }} templates are escaped from helm. */
export function alertRules(namespace: string, helm: boolean): Array<Record<string, unknown>> {
  const literal = (text: string) => (helm ? text.replace(/\{\{(.*?)\}\}/g, '{{`{{$1}}`}}') : text);
  return ALERTS.map((a) => ({
    alert: a.name,
    expr: a.expr(namespace),
    for: a.for,
    labels: { severity: a.severity },
    annotations: { summary: a.summary, description: literal(a.description(namespace)), runbook: `chart README, "Alerts and runbooks", ${a.name}` },
  }));
}

/** The chart README's runbook section. */
export function alertRunbooks(): string[] {
  const lines = ['## Alerts and runbooks', '', 'With `prometheusRule.enabled=true` the chart renders these alerts (NS is the release namespace).', ''];
  for (const a of ALERTS) {
    lines.push(`### ${a.name}`, '', `${a.summary} (${a.severity}; \`${a.expr('NS')}\` for ${a.for}).`, '', ...a.runbook, '');
  }
  return lines;
}

export class PrometheusRule extends Construct {
  readonly apiObject: ApiObject;

  constructor(scope: Construct, id: string, props: PrometheusRuleProps) {
    super(scope, id);
    const { ctx } = props;
    const { b, values: v } = ctx;
    this.apiObject = new ApiObject(this, 'resource', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: NAMES.app, namespace: ctx.namespace, labels: { ...ctx.labels } },
      spec: { groups: [{ name: 'pandocore', rules: alertRules(ctx.namespace, b.helm) }] },
    });
    // metadata.labels is copied key by key by cdk8s, so a whole-map value goes in as a patch.
    this.apiObject.addJsonPatch(JsonPatch.replace('/metadata/labels', labelsWithExtra(ctx, '$.Values.prometheusRule.labels', v.prometheusRule.labels)));
    b.guard(this.apiObject, { kind: 'if', expr: '$.Values.prometheusRule.enabled' });
  }
}
