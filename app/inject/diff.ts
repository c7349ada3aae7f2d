// An RFC 6902 diff that follows fast-json-patch's compare() (same operations for objects, in the
// same order) and also sees insertions and removals in arrays. compare() pairs array elements by
// index, so one container put first in initContainers rewrote every init container behind it
// (100 of them: a 3.64 MB patch). Here array elements are paired by identity first: mutate()
// builds its copy on write, so an element it did not change is the very same value in both arrays,
// and only what was inserted or removed gets an operation. Arrays whose shared elements changed
// order fall back to compare()'s pairing by index. Either way the patch is computed from the two
// objects, never written by hand, so it cannot disagree with them (test/inject/diff.test.ts
// applies it to generated pairs).

import fastJsonPatch, { type Operation } from 'fast-json-patch';

const { escapePathComponent, deepClone } = fastJsonPatch;

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** The operations that turn `from` into `to`; neither is modified and no operation shares their values. */
export function diff(from: Json, to: Json): Operation[] {
  const ops: Operation[] = [];
  diffValue(from, to, '', ops);
  return ops;
}

function diffValue(from: Json, to: Json, path: string, ops: Operation[]): void {
  if (from === to) return;
  if (Array.isArray(from) && Array.isArray(to)) return diffArray(from, to, path, ops);
  if (isObject(from) && isObject(to)) return diffObject(from, to, path, ops);
  // Different types, or two different scalars (NaN cannot come from JSON).
  ops.push({ op: 'replace', path, value: deepClone(to) });
}

function diffObject(from: Record<string, Json>, to: Record<string, Json>, path: string, ops: Operation[]): void {
  // As compare(): changes and removals of existing keys in reverse key order, then additions.
  const keys = Object.keys(from);
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i]!;
    const before = from[key];
    if (hasOwn(to, key) && to[key] !== undefined) {
      diffValue(before, to[key], `${path}/${escapePathComponent(key)}`, ops);
    } else if (before !== undefined) {
      ops.push({ op: 'remove', path: `${path}/${escapePathComponent(key)}` });
    }
  }
  for (const key of Object.keys(to)) {
    if (to[key] !== undefined && !(hasOwn(from, key) && from[key] !== undefined)) {
      ops.push({ op: 'add', path: `${path}/${escapePathComponent(key)}`, value: deepClone(to[key]) });
    }
  }
}

/** The elements both arrays hold, in `from`'s order, when they are unique and in the same order in both. */
function sharedInOrder(from: Json[], to: Json[]): Set<Json> | undefined {
  const inFrom = new Set(from);
  const inTo = new Set(to);
  if (inFrom.size !== from.length || inTo.size !== to.length) return undefined;
  const keptFrom = from.filter((e) => inTo.has(e));
  const keptTo = to.filter((e) => inFrom.has(e));
  if (keptFrom.length === 0) return undefined;
  for (let i = 0; i < keptFrom.length; i++) if (keptFrom[i] !== keptTo[i]) return undefined;
  return new Set(keptFrom);
}

function diffArray(from: Json[], to: Json[], path: string, ops: Operation[]): void {
  const shared = sharedInOrder(from, to);
  if (!shared) return diffByIndex(from, to, path, ops);
  // Walk both arrays; `at` is the index in the array as the operations so far have left it.
  let i = 0;
  let j = 0;
  let at = 0;
  while (i < from.length || j < to.length) {
    const removed = i < from.length && !shared.has(from[i]);
    const added = j < to.length && !shared.has(to[j]);
    if (removed && added) {
      // One element in place of another (a sidecar replaced): diff them where they stand.
      diffValue(from[i++], to[j++], `${path}/${at++}`, ops);
    } else if (removed) {
      ops.push({ op: 'remove', path: `${path}/${at}` });
      i++;
    } else if (added) {
      ops.push({ op: 'add', path: `${path}/${at++}`, value: deepClone(to[j++]) });
    } else {
      i++;
      j++;
      at++;
    }
  }
}

/** compare()'s pairing: element i with element i, then removals from the end or additions. */
function diffByIndex(from: Json[], to: Json[], path: string, ops: Operation[]): void {
  for (let i = from.length - 1; i >= to.length; i--) ops.push({ op: 'remove', path: `${path}/${i}` });
  for (let i = Math.min(from.length, to.length) - 1; i >= 0; i--) diffValue(from[i], to[i], `${path}/${i}`, ops);
  for (let i = from.length; i < to.length; i++) ops.push({ op: 'add', path: `${path}/${i}`, value: deepClone(to[i]) });
}
