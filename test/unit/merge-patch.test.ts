import { afterEach, describe, expect, it } from 'vitest';
import { decideWrite } from '../../src/pipeline/sync/document-writes.ts';
import type { JsonObject } from '../../src/pipeline/sync/documents.ts';
import { applyMergePatch } from '../../src/pipeline/sync/merge-patch.ts';

/*
 * JSON Merge Patch (RFC 7396) as `mergeDocument` applies it. Documents and patches arrive as
 * parsed JSON, so every case is written as JSON text: `JSON.parse` makes `__proto__` an own
 * member, as a GraphQL variable would.
 */

const key = { scope: { app: 'a', env: 'e', tenant: 't' }, service: 's', id: 'd' };
const at = new Date('2026-01-01T00:00:00Z');

/** What `mergeDocument` stores for `patch` on a document holding `data`, as JSON text. */
function merged(data: string, patch: string): string {
  const before = JSON.parse(data) as JsonObject;
  const current = { revision: 1, data: before, deleted: false, createdAt: at, updatedAt: at };
  const change = decideWrite(key, current, { kind: 'merge', patch: JSON.parse(patch) as JsonObject, expectedRevision: undefined }, 1e6, at);
  expect(change.after.revision).toBe(2);
  expect(Object.getPrototypeOf(change.after.data)).toBe(Object.prototype);
  // The stored state the change was decided from is left as it was.
  expect(JSON.stringify(before)).toBe(data);
  return JSON.stringify(change.after.data);
}

afterEach(() => {
  // Nothing leaked onto the shared prototype.
  expect(Object.keys(Object.prototype)).toEqual([]);
  expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('c');
});

describe.each(['constructor', '__proto__', 'prototype', 'hasOwnProperty', 'toString'])('mergeDocument with a member named %s', (name) => {
  const n = JSON.stringify(name);

  it('adds it at the top level and applies the rest of the patch', () => {
    expect(merged('{"a":1}', `{${n}:"x","b":2}`)).toBe(`{"a":1,${n}:"x","b":2}`);
    expect(merged('{"a":1}', `{"b":2,${n}:{"c":1}}`)).toBe(`{"a":1,"b":2,${n}:{"c":1}}`);
  });

  it('replaces it, and merges into it when both are objects', () => {
    expect(merged(`{${n}:1,"a":1}`, `{${n}:2}`)).toBe(`{${n}:2,"a":1}`);
    expect(merged(`{${n}:{"c":1,"d":1},"a":1}`, `{${n}:{"d":null,"e":2}}`)).toBe(`{${n}:{"c":1,"e":2},"a":1}`);
    expect(merged(`{${n}:{"c":1}}`, `{${n}:[1]}`)).toBe(`{${n}:[1]}`);
  });

  it('removes it with null, and leaves it when another member is removed', () => {
    expect(merged(`{${n}:1,"a":1}`, `{${n}:null}`)).toBe('{"a":1}');
    expect(merged(`{${n}:1,"a":1}`, '{"a":null}')).toBe(`{${n}:1}`);
    expect(merged('{"a":1}', `{${n}:null}`)).toBe('{"a":1}');
  });

  it('does all of that nested in another member', () => {
    expect(merged('{"o":{"k":1}}', `{"o":{${n}:{"c":1},"k":2}}`)).toBe(`{"o":{"k":2,${n}:{"c":1}}}`);
    expect(merged(`{"o":{${n}:{"c":1},"k":1}}`, `{"o":{${n}:{"c":2}}}`)).toBe(`{"o":{${n}:{"c":2},"k":1}}`);
    expect(merged(`{"o":{${n}:1,"k":1}}`, `{"o":{${n}:null,"k":2}}`)).toBe('{"o":{"k":2}}');
    expect(merged(`{"o":{${n}:1,"k":1}}`, '{"o":{"k":null}}')).toBe(`{"o":{${n}:1}}`);
  });
});

describe('applyMergePatch', () => {
  // RFC 7396, Appendix A: original, patch, result.
  it.each([
    ['{"a":"b"}', '{"a":"c"}', '{"a":"c"}'],
    ['{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'],
    ['{"a":"b"}', '{"a":null}', '{}'],
    ['{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'],
    ['{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'],
    ['{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'],
    ['{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'],
    ['{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'],
    ['["a","b"]', '["c","d"]', '["c","d"]'],
    ['{"a":"b"}', '["c"]', '["c"]'],
    ['{"a":"foo"}', 'null', 'null'],
    ['{"a":"foo"}', '"bar"', '"bar"'],
    ['{"e":null}', '{"a":1}', '{"e":null,"a":1}'],
    ['[1,2]', '{"a":"b","c":null}', '{"a":"b"}'],
    ['{}', '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'],
  ])('follows the RFC 7396 example %s + %s = %s', (original, patch, result) => {
    expect(applyMergePatch(JSON.parse(original), JSON.parse(patch))).toEqual(JSON.parse(result));
  });

  it('modifies neither the target nor the patch', () => {
    const target = { a: { b: 1, c: [1] }, d: 1 };
    const patch = { a: { b: null, e: { f: 1 } }, d: null };
    expect(applyMergePatch(target, patch)).toEqual({ a: { c: [1], e: { f: 1 } } });
    expect(target).toEqual({ a: { b: 1, c: [1] }, d: 1 });
    expect(patch).toEqual({ a: { b: null, e: { f: 1 } }, d: null });
  });
});
