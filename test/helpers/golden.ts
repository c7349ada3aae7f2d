// Golden cases: test/testdata/golden/<case>/ holds input.json (an AdmissionReview), optional
// config.json (environment overrides), optional context.json (what the webhook's namespace lookup
// returns), optional derived.json ({"from": "<case>"}: the input is that
// case's patched pod, rebuilt by UPDATE_GOLDEN=1), and the expectations response.json, patch.json
// and pod.json (the patched object). `UPDATE_GOLDEN=1 npm test` rewrites the expectations.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import type { AdmissionReview } from '../../app/admission/types.ts';
import { loadConfig, type Config } from '../../app/config.ts';
import type { ReviewContext } from '../../app/inject/decide.ts';

export const GOLDEN_DIR = join(import.meta.dirname, '..', 'testdata', 'golden');
export const UPDATE_GOLDEN = process.env.UPDATE_GOLDEN === '1';
export const INPUT_FILES = ['input.json', 'config.json', 'context.json', 'derived.json'];
export const EXPECTATION_FILES = ['response.json', 'patch.json', 'pod.json'];

export interface GoldenCase {
  name: string;
  dir: string;
  review: AdmissionReview;
  env: Record<string, string>;
  /** What the webhook knows about the namespace (context.json); absent: not checked. */
  context?: ReviewContext;
  derivedFrom?: string;
}

export function readJson<T = unknown>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

export function caseNames(): string[] {
  return readdirSync(GOLDEN_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

export function loadCase(name: string): GoldenCase {
  const dir = join(GOLDEN_DIR, name);
  const configPath = join(dir, 'config.json');
  const derivedPath = join(dir, 'derived.json');
  return {
    name,
    dir,
    review: existsSync(join(dir, 'input.json')) ? readJson<AdmissionReview>(join(dir, 'input.json')) : (undefined as never),
    env: existsSync(configPath) ? readJson<Record<string, string>>(configPath) : {},
    context: existsSync(join(dir, 'context.json')) ? readJson<ReviewContext>(join(dir, 'context.json')) : undefined,
    derivedFrom: existsSync(derivedPath) ? readJson<{ from: string }>(derivedPath).from : undefined,
  };
}

/** The config every golden case runs with: defaults plus the case's overrides. */
export function configFor(env: Record<string, string>): Config {
  return loadConfig({ PANDO_NAMESPACE: 'pando-system', ...env });
}

export function decodePatch(base64: string | undefined): Operation[] {
  return base64 ? (JSON.parse(Buffer.from(base64, 'base64').toString('utf8')) as Operation[]) : [];
}

/** Applies a patch the way the API server does: strictly, to a copy, failing on any bad op. */
export function applyStrict<T>(object: T, patch: Operation[]): T {
  return fastJsonPatch.applyPatch(structuredClone(object), patch, true, false).newDocument;
}
