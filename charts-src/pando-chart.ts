// The whole PandoCore deployment as one cdk8s Chart. Optional parts follow the values; in helm mode
// they are all built and guarded (see binding.ts).
import { ApiObject, Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import { Autoscaler } from './autoscaler.ts';
import { CertManagerTls } from './cert-manager-tls.ts';
import { createContext, type PandoContext } from './context.ts';
import { DisruptionBudget, PDB_RENDERED } from './disruption-budget.ts';
import { WebhookEgressPolicy } from './egress-network-policy.ts';
import { EXISTING_LICENSE, LicenseSecret, checkLicense } from './license-secret.ts';
import { WebhookNetworkPolicy } from './network-policy.ts';
import { ProtectedNamespace } from './protected-namespace.ts';
import { PrometheusRule } from './prometheus-rule.ts';
import { SecretAdmissionPolicy } from './secret-admission-policy.ts';
import { ServiceMonitor } from './service-monitor.ts';
import { SidecarClusterRole } from './sidecar-cluster-role.ts';
import type { Values } from './values.ts';
import { WebhookConfiguration } from './webhook-configuration.ts';
import { WebhookDeployment } from './webhook-deployment.ts';
import { WebhookRbac } from './webhook-rbac.ts';
import { WebhookService } from './webhook-service.ts';
import { WatchdogRbac } from './watchdog-rbac.ts';
import { WORKLOAD_POLICY_RENDERED, WorkloadRestartPolicy, workloadPolicyRendered } from './workload-restart-policy.ts';
import { ROLLOUT_ENABLED, RolloutConfigMap, rolloutEnabled } from './rollout-config-map.ts';

export interface PandoChartProps {
  /** Complete, validated values (see values.ts). */
  readonly values: Values;
  /** The release namespace. @default pando-system */
  readonly namespace?: string;
  /** The webhook image tag when image.tag is empty (the chart's appVersion). */
  readonly appVersion: string;
  /** Build the helm template form (tokens and guards) instead of plain manifests. @default false */
  readonly helm?: boolean;
}

export class PandoChart extends Chart {
  readonly ctx: PandoContext;

  constructor(scope: Construct, id: string, props: PandoChartProps) {
    super(scope, id, { disableResourceNameHashes: true });
    const ctx = createContext(props.values, props.helm ?? false, props.namespace ?? 'pando-system', props.appVersion);
    this.ctx = ctx;
    const { b, values: v } = ctx;

    checkLicense(ctx);
    const existingLicense = v.license.existingSecret.name !== '';
    if (b.include(`not (${EXISTING_LICENSE})`, !existingLicense)) {
      const license = new LicenseSecret(this, 'license', { ctx });
      b.guard(ApiObject.of(license.secret), { kind: 'if', expr: `not (${EXISTING_LICENSE})` });
    }
    const rbac = new WebhookRbac(this, 'rbac', { ctx });
    new WebhookDeployment(this, 'deployment', { ctx, serviceAccountName: rbac.serviceAccount.name });
    new WebhookService(this, 'service', { ctx });
    new WebhookConfiguration(this, 'webhook-configuration', { ctx });
    new SidecarClusterRole(this, 'sidecar-cluster-role', { ctx });
    if (b.include('$.Values.tls.certManager', v.tls.certManager)) new CertManagerTls(this, 'cert-manager', { ctx });
    if (b.include('$.Values.hpa.enabled', v.hpa.enabled)) new Autoscaler(this, 'autoscaler', { ctx });
    if (b.include(PDB_RENDERED, v.podDisruptionBudget.enabled && v.replicas > 1)) new DisruptionBudget(this, 'disruption-budget', { ctx });
    if (b.include('$.Values.networkPolicy.enabled', v.networkPolicy.enabled)) new WebhookNetworkPolicy(this, 'network-policy', { ctx });
    if (b.include('$.Values.networkPolicy.egress.enabled', v.networkPolicy.egress.enabled)) new WebhookEgressPolicy(this, 'egress-network-policy', { ctx });
    if (b.include('$.Values.serviceMonitor.enabled', v.serviceMonitor.enabled)) new ServiceMonitor(this, 'service-monitor', { ctx });
    // One construct for the RBAC of both leader loops that read and restart workloads; each object guarded by its own value.
    if (b.include(`or $.Values.watchdog.enabled (${ROLLOUT_ENABLED})`, v.watchdog.enabled || rolloutEnabled(v))) new WatchdogRbac(this, 'watchdog-rbac', { ctx });
    if (b.include(ROLLOUT_ENABLED, rolloutEnabled(v))) new RolloutConfigMap(this, 'rollout-config-map', { ctx });
    if (b.include('$.Values.prometheusRule.enabled', v.prometheusRule.enabled)) new PrometheusRule(this, 'prometheus-rule', { ctx });
    if (b.include('$.Values.secretPolicy.enabled', v.secretPolicy.enabled)) new SecretAdmissionPolicy(this, 'secret-admission-policy', { ctx });
    if (b.include(WORKLOAD_POLICY_RENDERED, workloadPolicyRendered(v))) new WorkloadRestartPolicy(this, 'workload-restart-policy', { ctx });
    if (b.helm) {
      const setup = new ProtectedNamespace(this, 'protected-namespace', { ctx, namespace: b.str('$ns', ''), licenseCopyRbac: true });
      for (const object of setup.objects) {
        // The chart cannot read the user's Secret: with license.existingSecret the webhook writes
        // the copies (app/controllers/license-copy.ts) under a Role of each namespace.
        const expr = object === setup.licenseSecret
          ? `ternary (list) $.Values.protectedNamespaces (${EXISTING_LICENSE})`
          : setup.licenseCopyRbac.includes(object)
            ? `ternary $.Values.protectedNamespaces (list) (${EXISTING_LICENSE})`
            : '$.Values.protectedNamespaces';
        b.guard(object, { kind: 'range', variable: '$ns', expr });
      }
    } else {
      for (const namespace of v.protectedNamespaces) new ProtectedNamespace(this, `protected-namespace-${namespace}`, { ctx, namespace, license: !existingLicense, licenseCopyRbac: existingLicense });
    }
  }
}
