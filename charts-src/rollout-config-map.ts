// The sidecar rollout's state (rollout.enabled, or watchdog.restartStale of earlier values): one
// ConfigMap the chart owns, so helm uninstall removes it. The chart renders it without data: the
// webhook's leader and `pando rollout pause|resume` write `target`, `paused` and `failure`, and
// helm's three-way merge leaves keys it never rendered alone on upgrade.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { ROLLOUT_CONFIGMAP } from '../app/contract.ts';
import type { PandoContext } from './context.ts';
import type { Values } from './values.ts';

/** The template condition of everything the rollout needs; rolloutEnabled is its plain twin. */
export const ROLLOUT_ENABLED = 'or $.Values.rollout.enabled $.Values.watchdog.restartStale';

export function rolloutEnabled(v: Values): boolean {
  return v.rollout.enabled || v.watchdog.restartStale;
}

export interface RolloutConfigMapProps {
  readonly ctx: PandoContext;
}

export class RolloutConfigMap extends Construct {
  readonly configMap: ApiObject;

  constructor(scope: Construct, id: string, props: RolloutConfigMapProps) {
    super(scope, id);
    const { ctx } = props;
    this.configMap = new ApiObject(this, 'config-map', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: ROLLOUT_CONFIGMAP, namespace: ctx.namespace, labels: { ...ctx.labels } },
    });
    ctx.b.guard(this.configMap, { kind: 'if', expr: ROLLOUT_ENABLED });
  }
}
