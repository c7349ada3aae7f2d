// `pando inject`: every golden case through the command line's code path (in-process for all, as a
// real process for some), the same pods as plain manifests and inside every kind of workload, and
// multi-document streams, settings layering and error messages.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import type { AdmissionReview, Pod } from '../../app/admission/types.ts';
import { injectAll, WORKLOAD_KINDS } from '../../app/cli/manifests.ts';
import { formatManifests, parseManifests, runInject, type InjectCommandOptions } from '../../app/cli/inject.ts';
import { PLAIN } from '../../app/cli/output.ts';
import { planInjection } from '../../app/inject/sidecar.ts';
import { caseNames, configFor, loadCase, readJson, type GoldenCase } from '../helpers/golden.ts';

const REPO = join(import.meta.dirname, '..', '..');
const MAIN = join(REPO, 'app', 'cli', 'main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'pando-cli-inject-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function expectedPod(c: GoldenCase): unknown {
  try {
    return readJson(join(c.dir, 'pod.json'));
  } catch {
    return undefined;
  }
}

function expectedResponse(c: GoldenCase) {
  return readJson<{ warnings?: string[]; auditAnnotations: { reason: string } }>(join(c.dir, 'response.json'));
}

function readinessOf(c: GoldenCase) {
  const ns = c.review.request?.namespace;
  return c.context?.namespace && ns ? new Map([[ns, c.context.namespace]]) : undefined;
}

function pando(args: string[], input?: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd: REPO,
    input,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function yamlDocs(text: string): unknown[] {
  return parseAllDocuments(text).map((d) => {
    assert.equal(d.errors.length, 0, String(d.errors[0]));
    return d.toJS();
  });
}

/** A golden case's pod, as the plain manifest a user would write (the request's namespace via -n). */
function isPodCreate(c: GoldenCase): boolean {
  const r = c.review.request!;
  return r.kind?.kind === 'Pod' && r.operation === 'CREATE' && r.object != null && !r.subResource;
}

// A failed namespace lookup is the webhook's skip; `pando inject --check-namespace` stops with an error instead.
const names = caseNames().filter((name) => loadCase(name).context?.namespaceLookupFailed === undefined);

describe('pando inject: every golden case, in-process', () => {
  for (const name of names) {
    it(name, () => {
      const c = loadCase(name);
      const plan = planInjection(configFor(c.env));
      const objects = parseManifests(readFileSync(join(c.dir, 'input.json'), 'utf8'), 'input.json');
      const done = injectAll(objects, { plan, defaultNamespace: 'default', readiness: readinessOf(c) });
      const response = expectedResponse(c);
      assert.equal(done.results.length, 1);
      assert.equal(done.results[0]!.reason, response.auditAnnotations.reason);
      assert.deepEqual(done.results[0]!.warnings, response.warnings ?? []);
      const pod = expectedPod(c);
      if (pod === undefined) {
        assert.equal(c.review.request!.object ?? null, null, 'only a case without an object has no pod.json');
        assert.equal(formatManifests(done.objects), '', 'nothing to print');
      } else {
        assert.deepEqual(done.objects[0], pod);
        assert.deepEqual(yamlDocs(formatManifests(done.objects)), [pod], 'the printed YAML is the patched object');
      }
    });
  }
});

describe('pando inject: golden pods as plain manifests', () => {
  for (const name of names) {
    const c = loadCase(name);
    if (!isPodCreate(c)) continue;
    it(name, () => {
      const plan = planInjection(configFor(c.env));
      const request = c.review.request!;
      const done = injectAll([request.object], { plan, defaultNamespace: request.namespace!, readiness: readinessOf(c) });
      assert.equal(done.results[0]!.reason, expectedResponse(c).auditAnnotations.reason);
      assert.deepEqual(done.objects[0], expectedPod(c));
    });
  }
});

describe('pando inject: golden cases through the real command', () => {
  // One of each: default config, a config file, a mode, a non-pod, a skip, a reinjection, no object.
  const picked = ['minimal-pod', 'classic-sidecar', 'mode-enforce', 'deployment', 'excluded-namespace', 'injected-older-version', 'delete', 'mode-invalid'];
  for (const name of picked) {
    it(`${name}: node app/cli/main.ts inject -f - prints pod.json`, () => {
      const c = loadCase(name);
      const args = ['inject', '-f', '-'];
      if (Object.keys(c.env).length > 0) args.push('--config', join(c.dir, 'config.json'));
      const r = pando(args, readFileSync(join(c.dir, 'input.json'), 'utf8'));
      assert.equal(r.status, 0, r.stderr);
      const pod = expectedPod(c);
      assert.deepEqual(yamlDocs(r.stdout).filter((d) => d !== null), pod === undefined ? [] : [pod]);
      const reason = expectedResponse(c).auditAnnotations.reason;
      assert.match(r.stderr, new RegExp(`: ${reason}: `), 'the summary on stderr names the reason');
      for (const w of expectedResponse(c).warnings ?? []) assert.ok(r.stderr.includes(w), `warning shown: ${w}`);
    });
  }

  it('a golden pod as a manifest file, with -n and -o json naming the config used', () => {
    const c = loadCase('classic-sidecar');
    const file = join(tmp, 'pod.yaml');
    writeFileSync(file, stringify(c.review.request!.object));
    const r = pando(['inject', '-f', file, '-n', c.review.request!.namespace!, '--config', join(c.dir, 'config.json'), '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.objects, [expectedPod(c)]);
    assert.deepEqual(out.config.sources, ['defaults', `--config ${join(c.dir, 'config.json')}`]);
    assert.equal(out.config.native, false);
    assert.equal(out.config.env.PANDO_SIDECAR_NATIVE, 'false');
    assert.equal(out.config.configHash, planInjection(configFor(c.env)).configHash);
    assert.equal(out.results[0].reason, 'injected');
  });
});

function minimalPod(): Pod {
  return structuredClone(loadCase('minimal-pod').review.request!.object) as Pod;
}

function workload(kind: string, pod: Pod): Record<string, unknown> {
  // As a manifest would hold it: no field that is undefined (YAML and JSON have none).
  const { name: _name, namespace: _namespace, ...meta } = pod.metadata ?? {};
  const template = { metadata: meta, spec: pod.spec };
  const apiVersion = kind === 'ReplicationController' ? 'v1' : ['Job', 'CronJob'].includes(kind) ? 'batch/v1' : 'apps/v1';
  const metadata = { name: `w-${kind.toLowerCase()}`, namespace: pod.metadata?.namespace };
  if (kind === 'CronJob') return { apiVersion, kind, metadata, spec: { schedule: '@daily', jobTemplate: { spec: { template } } } };
  return { apiVersion, kind, metadata, spec: { selector: { matchLabels: { app: 'x' } }, template } };
}

describe('pando inject: workloads', () => {
  const pod = minimalPod();
  const injected = readJson<Pod>(join(loadCase('minimal-pod').dir, 'pod.json'));
  const plan = planInjection(configFor({}));

  for (const kind of WORKLOAD_KINDS) {
    it(`${kind}: the pod template becomes the pod the webhook would make`, () => {
      const done = injectAll([workload(kind, pod)], { plan, defaultNamespace: 'default' });
      assert.equal(done.results[0]!.target, 'pod-template');
      assert.equal(done.results[0]!.reason, 'injected');
      assert.equal(done.results[0]!.namespace, pod.metadata?.namespace);
      const out = done.objects[0] as any;
      const template = kind === 'CronJob' ? out.spec.jobTemplate.spec.template : out.spec.template;
      assert.deepEqual(template.spec, injected.spec);
      assert.deepEqual(template.metadata.annotations, injected.metadata?.annotations);
      assert.equal(template.metadata.namespace, undefined, 'no namespace added to a template');
      assert.deepEqual(out.metadata, workload(kind, pod).metadata, 'the workload itself is unchanged');
    });
  }

  it('a template outside the default-namespace takes the namespace from the object, and an excluded one is left alone', () => {
    const w = workload('Deployment', pod);
    (w.metadata as any).namespace = 'kube-system';
    const done = injectAll([w], { plan, defaultNamespace: 'shop' });
    assert.equal(done.results[0]!.reason, 'namespace-excluded');
    assert.deepEqual(done.objects[0], w);
  });

  it('a workload without a template is reported, not changed', () => {
    const broken = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: {} };
    const done = injectAll([broken], { plan, defaultNamespace: 'default' });
    assert.equal(done.results[0]!.reason, 'not-a-workload');
    assert.match(done.results[0]!.message, /spec\.template/);
    assert.deepEqual(done.objects[0], broken);
  });
});

describe('pando inject: multi-document streams', () => {
  const pod = minimalPod();
  const stream = [
    '# comments are allowed in, not kept',
    stringify(pod),
    '---',
    stringify(workload('StatefulSet', pod)),
    '---',
    '',
    '---',
    stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { a: 'b' } }),
    '---',
    stringify({ apiVersion: 'v1', kind: 'List', items: [workload('Job', pod), { ...pod, metadata: { ...pod.metadata, labels: {} } }] }),
  ].join('\n');

  it('keeps order and count, injects what is injectable, passes the rest through; a second run changes nothing', () => {
    const first = pando(['inject', '-f', '-'], stream);
    assert.equal(first.status, 0, first.stderr);
    const docs = yamlDocs(first.stdout) as any[];
    assert.deepEqual(docs.map((d) => d.kind), ['Pod', 'StatefulSet', 'ConfigMap', 'List']);
    assert.equal(docs[0].metadata.annotations['pandocore.xyz/status'], 'injected');
    assert.equal(docs[1].spec.template.spec.initContainers[0].name, 'pando-sidecar');
    assert.deepEqual(docs[2].data, { a: 'b' });
    assert.equal(docs[3].items[0].spec.template.metadata.annotations['pandocore.xyz/status'], 'injected');
    assert.equal(docs[3].items[1].metadata.annotations, undefined, 'the unlabelled pod in the List is untouched');
    assert.match(first.stderr, /ConfigMap default\/settings: not-a-workload/);
    assert.match(first.stderr, /Pod shop\/web: not-labelled/);

    const second = pando(['inject', '-f', '-', '-o', 'json'], first.stdout);
    assert.equal(second.status, 0, second.stderr);
    const out = JSON.parse(second.stdout);
    assert.deepEqual(out.objects, docs, 'injection is idempotent');
    assert.deepEqual(out.results.map((r: any) => r.reason), ['already-injected', 'already-injected', 'not-a-workload', 'already-injected', 'not-labelled']);
  });

  it('YAML out is what kubectl reads back: no document for an empty input document, none for a null object', () => {
    assert.equal(formatManifests([null, undefined]), '');
    assert.deepEqual(parseManifests('---\n---\n', 'x'), []);
  });
});

describe('pando inject: settings and errors', () => {
  const pod = stringify(minimalPod());

  it('flags beat --config, which beats the environment', () => {
    const file = join(tmp, 'config.yaml');
    writeFileSync(file, 'PANDO_DEFAULT_MODE: debug\nPANDO_SIDECAR_IMAGE: registry.example.invalid/sidecar:2.0.0\n');
    const env = { PANDO_DEFAULT_MODE: 'enforce', PANDO_SIDECAR_IMAGE: 'registry.example.invalid/sidecar:3.0.0', PANDO_SIDECAR_NATIVE: 'false' };
    const r = pando(['inject', '-f', '-', '-o', 'json', '--config', file, '--sidecar-version', '2.0.1'], pod, env);
    assert.equal(r.status, 0, r.stderr);
    const { config, objects } = JSON.parse(r.stdout);
    assert.deepEqual(config.sources, ['defaults', 'environment', `--config ${file}`, 'flags']);
    assert.equal(config.defaultMode, 'debug');
    assert.equal(config.sidecarImage, 'registry.example.invalid/sidecar:2.0.0');
    assert.equal(config.version, '2.0.1');
    assert.equal(config.native, false, 'from the environment');
    assert.equal(objects[0].metadata.annotations['pandocore.xyz/version'], '2.0.1');
    assert.equal(objects[0].spec.containers.at(-1).env[0].value, 'debug');
  });

  it('--no-native and --native are flags the user gave; without them the environment holds', () => {
    const viaEnv = JSON.parse(pando(['inject', '-f', '-', '-o', 'json'], pod, { PANDO_SIDECAR_NATIVE: 'false' }).stdout);
    assert.equal(viaEnv.config.native, false);
    const flag = JSON.parse(pando(['inject', '-f', '-', '-o', 'json', '--native'], pod, { PANDO_SIDECAR_NATIVE: 'false' }).stdout);
    assert.equal(flag.config.native, true);
  });

  it('a bad setting names the flag and the variable, exit code 2', () => {
    const r = pando(['inject', '-f', '-', '--sidecar-resources', '{"requests":{}}'], pod);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /pando: error: invalid injection setting: PANDO_SIDECAR_RESOURCES: /);
    assert.match(r.stderr, /fix: correct --sidecar-resources or PANDO_SIDECAR_RESOURCES/);
  });

  it('bad YAML, a missing file, an empty input and a bad option say what to do, exit code 2', () => {
    const bad = pando(['inject', '-f', '-'], 'kind: Pod\nmetadata: [\n');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /document 1 line \d+ is not valid YAML/);
    assert.match(bad.stderr, /fix: /);
    const missing = pando(['inject', '-f', join(tmp, 'nope.yaml')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /cannot read .*nope\.yaml: ENOENT\n  fix: give a manifest file, or - to read standard input/);
    const empty = pando(['inject', '-f', '-'], '');
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /holds no manifest/);
    const option = pando(['inject', '-f', '-', '--default-mode', 'banana'], pod);
    assert.equal(option.status, 2);
    assert.match(option.stderr, /must be one of monitor, enforce, debug/);
  });

  it('pando --version prints the package version, exit code 0', () => {
    const r = pando(['--version']);
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  });

  it('plain text when piped and with NO_COLOR; colour only when forced', async () => {
    const plain = pando(['inject', '-f', '-'], pod);
    assert.doesNotMatch(plain.stderr, /\u001b\[/);
    assert.match(plain.stderr, /^ok {3}Pod shop\/web: injected/m);
    const forced = pando(['inject', '-f', '-'], pod, { FORCE_COLOR: '1', NO_COLOR: '' });
    assert.match(forced.stderr, /\u001b\[32mok/);
    // runInject in-process with the plain style: same words.
    let err = '';
    const options: InjectCommandOptions = { filename: '-', output: 'yaml' };
    await runInject(options, { stdin: async () => pod, stdout: () => {}, stderr: (t) => (err += t), env: {}, errStyle: PLAIN });
    assert.match(err, /^ok {3}Pod shop\/web: injected: sidecar 1\.0\.0 injected \(monitor\)$/m);
  });
});

// The review carried by AdmissionReview input reaches the core unchanged.
it('an AdmissionReview document keeps its request (operation, namespace, dry run) as the API server sent it', () => {
  const review = structuredClone(loadCase('minimal-pod').review) as AdmissionReview;
  review.request!.operation = 'UPDATE';
  const done = injectAll([review], { plan: planInjection(configFor({})), defaultNamespace: 'default' });
  assert.equal(done.results[0]!.reason, 'operation-not-create');
  assert.deepEqual(done.objects[0], review.request!.object);
});
