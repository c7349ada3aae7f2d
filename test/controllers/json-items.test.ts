// The list splitter of the watchdog's informer (app/controllers/json-items.ts): whatever the chunk
// boundaries, it hands on exactly the items JSON.parse finds, and the rest is the list with no items.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListItemSplitter } from '../../app/controllers/json-items.ts';

const LIST = {
  kind: 'PodList',
  apiVersion: 'v1',
  // A nested "items" key and an "items" string must not be taken for the list's items.
  metadata: { resourceVersion: '4711', continue: 'eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==', items: ['x'], note: 'items' },
  items: [
    { metadata: { name: 'a', uid: 'u-a', annotations: { 'pandocore.xyz/status': '{"injected":[1,2]}', quote: 'say \\"}]' } }, spec: { containers: [{ name: 'app', args: ['[', '{', '\\'] }] } },
    { metadata: { name: 'ünïcødé-€-😀', labels: { 'pandocore.xyz/protect': 'true' } }, spec: { containers: [] } },
    { metadata: { name: 'c', uid: 'u-c' }, spec: { initContainers: [{ name: 'init' }], containers: [{ name: 'app' }] }, status: { phase: 'Pending' } },
  ],
};

function split(text: string, chunkSize: number): { items: unknown[]; rest: unknown } {
  const items: unknown[] = [];
  const splitter = new ListItemSplitter((item) => items.push(item));
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += chunkSize) splitter.write(bytes.subarray(i, i + chunkSize));
  return { items, rest: splitter.end() };
}

describe('ListItemSplitter', () => {
  for (const [what, text] of [['compact', JSON.stringify(LIST)], ['indented', JSON.stringify(LIST, null, 2)]] as const) {
    it(`hands on each item of a ${what} list, whatever the chunk size, and keeps the rest`, () => {
      for (const size of [1, 2, 3, 7, 64, 1 << 20]) {
        const { items, rest } = split(text, size);
        assert.deepEqual(items, LIST.items, `chunks of ${size}`);
        assert.deepEqual(rest, { ...LIST, items: [] }, `chunks of ${size}`);
      }
    });
  }

  it('handles an empty list and a list without items', () => {
    assert.deepEqual(split('{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":[]}', 5), { items: [], rest: { kind: 'PodList', metadata: { resourceVersion: '1' }, items: [] } });
    assert.deepEqual(split('{"kind":"PodList","metadata":{}}', 3), { items: [], rest: { kind: 'PodList', metadata: {} } });
  });

  it('refuses a list cut short instead of returning part of it', () => {
    const text = JSON.stringify(LIST);
    for (const cut of [text.indexOf('"items":[') + 20, text.length - 3]) assert.throws(() => split(text.slice(0, cut), 16), SyntaxError);
  });
});
