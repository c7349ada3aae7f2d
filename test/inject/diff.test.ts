// diff() cannot disagree with the objects: for generated pairs (copy-on-write edits that share
// unchanged values, as mutate() makes them, and unrelated documents) its patch applies strictly
// and yields exactly the second object, leaving the first untouched.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import fastJsonPatch from 'fast-json-patch';
import { diff } from '../../app/inject/diff.ts';
import { applyStrict } from '../helpers/golden.ts';

type Json = unknown;
type Gen = fc.GeneratorValue;

const RUNS = 1000;
// Keys with the characters JSON pointers escape. Not `__proto__`: fast-json-patch's applier, the
// checker here, refuses (or with the ban off, follows) it; test/server/prototype.test.ts covers it.
const key = fc.oneof(fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__'), fc.constantFrom('a/b', 'm~n', 'constructor', '0', '-'));
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.string({ maxLength: 4 }), fc.integer(), fc.boolean(), fc.constant(null), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 5 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 5 }),
})).value;

/** A copy on write of `value`: removed, inserted and edited elements; untouched ones shared. */
function edit(g: Gen, value: Json, depth = 0): Json {
  if (depth > 3 || g(fc.nat, { max: 5 }) === 0) return g(() => json);
  if (Array.isArray(value)) {
    const out = value.filter(() => g(fc.nat, { max: 3 }) !== 0);
    for (let n = g(fc.nat, { max: 2 }); n > 0; n--) out.splice(g(fc.nat, { max: out.length }), 0, g(() => json));
    if (out.length > 0 && g(fc.boolean)) {
      const at = g(fc.nat, { max: out.length - 1 });
      out[at] = edit(g, out[at], depth + 1);
    }
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(value)) {
      const choice = g(fc.nat, { max: 4 });
      if (choice === 0) continue;
      Object.defineProperty(out, k, { value: choice === 1 ? edit(g, v, depth + 1) : v, enumerable: true, writable: true, configurable: true });
    }
    if (g(fc.boolean)) Object.defineProperty(out, g(() => key), { value: g(() => json), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return g(() => json);
}

const root = fc.oneof(fc.array(json, { maxLength: 6 }), fc.dictionary(key, json, { maxKeys: 6 }));

function check(from: Json, to: Json) {
  const snapshot = JSON.stringify(from);
  const patch = diff(from, to);
  assert.equal(JSON.stringify(from), snapshot, 'diff does not modify its input');
  assert.deepEqual(applyStrict(from, patch), JSON.parse(JSON.stringify(to)));
  assert.equal(fastJsonPatch.validate(patch, structuredClone(from)), undefined, 'every operation is valid where it applies');
}

describe('diff', () => {
  it(`applies to give the target for ${RUNS} copy-on-write edits`, () => {
    fc.assert(fc.property(root, fc.gen(), (from, g) => check(from, edit(g, from))), { numRuns: RUNS });
  });

  it(`applies to give the target for ${RUNS} unrelated documents`, () => {
    fc.assert(fc.property(root, root, (from, to) => check(from, to)), { numRuns: RUNS });
  });

  it('an element put first is one add; a removed one is one remove', () => {
    const items = Array.from({ length: 50 }, (_, i) => ({ name: `c${i}` }));
    assert.deepEqual(diff({ list: items }, { list: [{ name: 'new' }, ...items] }), [{ op: 'add', path: '/list/0', value: { name: 'new' } }]);
    assert.deepEqual(diff({ list: items }, { list: items.filter((_, i) => i !== 7) }), [{ op: 'remove', path: '/list/7' }]);
  });
});
