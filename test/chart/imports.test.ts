// charts-src/imports/ holds only the cert-manager kinds and spec fields the chart uses.
import { deepStrictEqual, ok } from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { KEEP, trimCrd } from '../../scripts/chart/import-cert-manager.ts';
import { ROOT } from './render.ts';

const source = readFileSync(`${ROOT}/charts-src/imports/cert-manager.io.ts`, 'utf8');

test('imports: only Issuer and Certificate, and only the spec fields KEEP lists', () => {
  deepStrictEqual([...source.matchAll(/^export class (\w+) extends ApiObject/gm)].map((m) => m[1]), ['Certificate', 'Issuer']);
  for (const [kind, fields] of Object.entries(KEEP)) {
    const body = source.split(`export interface ${kind}Spec {`)[1]!.split('\n}\n')[0]!;
    // cdk8s import writes isCA as isCa.
    const declared = [...body.matchAll(/^ {2}readonly (\w+)\??:/gm)].map((m) => m[1]!.toLowerCase()).sort();
    deepStrictEqual(declared, fields.map((f) => f.toLowerCase()).sort(), kind);
  }
  ok(source.split('\n').length < 1000, `${source.split('\n').length} lines`);
});

test('trimCrd drops other spec fields, their one-of rules and status', () => {
  const crd = {
    spec: {
      names: { kind: 'Issuer' },
      versions: [{ schema: { openAPIV3Schema: { properties: { status: {}, spec: { properties: { ca: {}, acme: {}, vault: {}, selfSigned: {} }, oneOf: [{ required: ['acme'] }], required: ['acme'] } } } } }],
    },
  };
  const spec = trimCrd(crd).spec.versions[0].schema.openAPIV3Schema;
  deepStrictEqual(Object.keys(spec.properties), ['spec']);
  deepStrictEqual(spec.properties.spec, { properties: { ca: {}, selfSigned: {} }, required: [] });
});
