// Values for a plain `cdk8s synth`: the defaults, then each YAML file of PANDO_VALUES
// (comma-separated), merged as helm merges them, validated against the same schema helm uses.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { defaultValues, valuesSchema, type Values } from './values.ts';

function merge(base: unknown, override: unknown): unknown {
  if (base && override && typeof base === 'object' && typeof override === 'object' && !Array.isArray(base) && !Array.isArray(override)) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    // As helm coalesces values: a key set to null removes the default (podSecurityContext.runAsUser: null).
    for (const [key, value] of Object.entries(override)) {
      if (value === null) delete out[key];
      else out[key] = merge(out[key], value);
    }
    return out;
  }
  return override === undefined ? base : override;
}

/** Defaults merged with the given overrides (as helm merges -f files), validated. */
export function resolveValues(...overrides: unknown[]): Values {
  const values = overrides.reduce<unknown>((acc, o) => merge(acc, o ?? {}), defaultValues());
  const { $schema: _ignored, ...schema } = valuesSchema();
  const validate = new Ajv({ allErrors: true, strict: false, verbose: true }).compile(schema);
  if (!validate(values)) {
    const problems = (validate.errors ?? []).map(describeValueError);
    throw new Error(`invalid values:\n  ${[...new Set(problems)].join('\n  ')}`);
  }
  return values as Values;
}

/** One schema error as helm words it: the key (dotted, as in --set), what is wrong, what is allowed. */
export function describeValueError(e: ErrorObject): string {
  const path = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const at = (extra: string[] = []) => [...path, ...extra].join('.') || '(root)';
  const parent = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys(parent?.properties ?? {});
      return `${at([key])}: unknown key${allowed.length > 0 ? ` (allowed${path.length > 0 ? ` in ${at()}` : ''}: ${allowed.join(', ')})` : ''}`;
    }
    case 'enum':
      return `${at()}: ${JSON.stringify(e.data)} is not allowed (allowed: ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')})`;
    default:
      return `${at()}: ${e.message ?? 'invalid'}${e.data !== undefined && typeof e.data !== 'object' ? ` (got ${JSON.stringify(e.data)})` : ''}`;
  }
}

export function valuesFromFiles(list: string | undefined): Values {
  const files = (list ?? '').split(',').map((f) => f.trim()).filter((f) => f !== '');
  return resolveValues(...files.map((file) => parse(readFileSync(file, 'utf8')) as unknown));
}
