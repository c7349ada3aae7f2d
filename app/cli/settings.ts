// The injection settings of `pando inject`: the webhook's own variables (app/config.ts does the
// validation), taken from the environment, a file or the live webhook Deployment, then from flags.
// Only the variables that shape injection are read; listening and TLS settings do not matter here.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { loadConfig, type Config } from '../config.ts';
import { ENV } from '../contract.ts';
import { ConfigError } from '../errors.ts';
import { CliError } from './output.ts';

/** The variables that decide what a pod looks like after injection. */
export const INJECTION_ENV = [
  ENV.namespace,
  ENV.defaultMode,
  ENV.excludedNamespaces,
  ENV.sidecarImage,
  ENV.sidecarVersion,
  ENV.sidecarNative,
  ENV.sidecarResources,
  ENV.sidecarRunAsUser,
  ENV.sidecarPullPolicy,
  ENV.sidecarPullSecrets,
  ENV.sidecarPodResources,
  ENV.sidecarStartupProbe,
] as const;

export type InjectionEnv = Partial<Record<(typeof INJECTION_ENV)[number], string>>;

export interface InjectFlags {
  defaultMode?: string;
  sidecarImage?: string;
  sidecarVersion?: string;
  /** commander's --native / --no-native */
  native?: boolean;
  excludedNamespaces?: string;
  sidecarResources?: string;
  releaseNamespace?: string;
}

export interface ResolvedSettings {
  config: Config;
  /** The effective variables, as the webhook would read them. */
  env: InjectionEnv;
  /** Where they came from, lowest precedence first: defaults, environment, --config FILE, cluster, flags. */
  sources: string[];
}

export function pickInjectionEnv(source: Readonly<Record<string, unknown>>): InjectionEnv {
  const out: InjectionEnv = {};
  for (const name of INJECTION_ENV) {
    const value = source[name];
    if (value === undefined || value === null) continue;
    out[name] = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return out;
}

/** A JSON or YAML map of PANDO_* variables (the container's env, or a golden case's config.json). */
export function readConfigFile(path: string): InjectionEnv {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read --config ${path}: ${(err as Error).message}`, 'give a readable JSON or YAML file of PANDO_* variables');
  }
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch (err) {
    throw new CliError(`--config ${path} is not JSON or YAML: ${(err as Error).message}`, 'the file is a map like {"PANDO_DEFAULT_MODE": "enforce"}');
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CliError(`--config ${path} is not a map of variables`, 'the file is a map like {"PANDO_DEFAULT_MODE": "enforce"}');
  }
  const unknown = Object.keys(parsed).filter((k) => k.startsWith('PANDO_') && !Object.values(ENV).includes(k as never));
  if (unknown.length > 0) {
    throw new CliError(`--config ${path}: unknown variable ${unknown[0]}`, `the variables are listed in the README's Configuration table`);
  }
  return pickInjectionEnv(parsed as Record<string, unknown>);
}

export function flagsEnv(flags: InjectFlags): InjectionEnv {
  const out: InjectionEnv = {};
  if (flags.defaultMode !== undefined) out[ENV.defaultMode] = flags.defaultMode;
  if (flags.sidecarImage !== undefined) out[ENV.sidecarImage] = flags.sidecarImage;
  if (flags.sidecarVersion !== undefined) out[ENV.sidecarVersion] = flags.sidecarVersion;
  if (flags.native !== undefined) out[ENV.sidecarNative] = String(flags.native);
  if (flags.excludedNamespaces !== undefined) out[ENV.excludedNamespaces] = flags.excludedNamespaces;
  if (flags.sidecarResources !== undefined) out[ENV.sidecarResources] = flags.sidecarResources;
  if (flags.releaseNamespace !== undefined) out[ENV.namespace] = flags.releaseNamespace;
  return out;
}

const FLAG_OF: Record<string, string> = {
  [ENV.defaultMode]: '--default-mode',
  [ENV.sidecarImage]: '--sidecar-image',
  [ENV.sidecarVersion]: '--sidecar-version',
  [ENV.sidecarNative]: '--native/--no-native',
  [ENV.excludedNamespaces]: '--excluded-namespaces',
  [ENV.sidecarResources]: '--sidecar-resources',
  [ENV.namespace]: '--release-namespace',
};

/**
 * Layers, lowest first; each is a label and its variables. Explicit sources (a file, the cluster,
 * flags) beat the ambient environment.
 */
export function resolveSettings(layers: ReadonlyArray<readonly [string, InjectionEnv]>): ResolvedSettings {
  const env: InjectionEnv = {};
  const sources = ['defaults'];
  for (const [label, layer] of layers) {
    if (Object.keys(layer).length === 0) continue;
    Object.assign(env, layer);
    sources.push(label);
  }
  try {
    return { config: loadConfig(env), env, sources };
  } catch (err) {
    if (err instanceof ConfigError) {
      const flag = FLAG_OF[err.variable];
      throw new CliError(`invalid injection setting: ${err.message}`, `correct ${flag ? `${flag} or ` : ''}${err.variable} (from ${sources.slice(1).join(', ') || 'defaults'})`);
    }
    throw err;
  }
}
