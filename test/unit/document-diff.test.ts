import { applyPatch, type Operation } from 'rfc6902';
import { describe, expect, it } from 'vitest';
import { documentDiff } from '../../src/pipeline/sync/document-diff.ts';

/** Copies through JSON: no object shared between two places (structuredClone would keep the sharing). */
function jsonCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Applies `patch` to a copy of `before`, failing on any operation rfc6902 refuses. */
function applied(before: unknown, patch: readonly Operation[]): unknown {
  const target = { root: jsonCopy(before) };
  // Rooted one level down so that a `replace` of the whole document ('') works on the copy.
  const results = applyPatch(target, jsonCopy(patch).map((operation) => ({ ...operation, path: `/root${operation.path}`, ...('from' in operation && { from: `/root${operation.from}` }) })));
  expect(results.filter((result) => result !== null)).toEqual([]);
  return target.root;
}

function expectPatchFrom(before: unknown, after: unknown): Operation[] {
  const patch = documentDiff(before, after);
  expect(applied(before, patch)).toEqual(after);
  return patch;
}

/** A deterministic pseudo-random source (mulberry32), so that a failure replays. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A small JSON value: numbers, strings, nested arrays and objects, `depth` levels at most. */
function value(next: () => number, depth: number): unknown {
  const pick = next();
  if (depth === 0 || pick < 0.4) return Math.floor(next() * 5);
  if (pick < 0.55) return ['a', 'b', 'c'][Math.floor(next() * 3)];
  if (pick < 0.8) return Array.from({ length: Math.floor(next() * 5) }, () => value(next, depth - 1));
  return Object.fromEntries(Array.from({ length: Math.floor(next() * 4) }, (_, index) => [`k${index}`, value(next, depth - 1)]));
}

/** `array` with a few random insertions, removals and replacements. */
function edited(next: () => number, array: readonly unknown[], edits: number): unknown[] {
  const copy = [...array];
  for (let edit = 0; edit < edits; edit += 1) {
    const at = Math.floor(next() * (copy.length + 1));
    const kind = next();
    if (kind < 0.33) copy.splice(at, 0, value(next, 2));
    else if (kind < 0.66 && copy.length > 0) copy.splice(Math.min(at, copy.length - 1), 1);
    else if (copy.length > 0) copy[Math.min(at, copy.length - 1)] = value(next, 2);
  }
  return copy;
}

describe('documentDiff', () => {
  it('answers the usual patches of objects and small array edits', () => {
    expect(expectPatchFrom({ a: 1 }, { a: 1, b: 2 })).toEqual([{ op: 'add', path: '/b', value: 2 }]);
    expect(expectPatchFrom({ a: 1, b: 2 }, { a: 1 })).toEqual([{ op: 'remove', path: '/b' }]);
    expect(expectPatchFrom({ list: [1, 2, 3] }, { list: [1, 2, 3, 4] })).toEqual([{ op: 'add', path: '/list/-', value: 4 }]);
    expect(expectPatchFrom({ list: [1, 2, 3] }, { list: [1, 9, 2, 3] })).toEqual([{ op: 'add', path: '/list/1', value: 9 }]);
    expect(expectPatchFrom({ list: [1, 2, 3] }, { list: [1, 3] })).toEqual([{ op: 'remove', path: '/list/1' }]);
    expect(expectPatchFrom({ items: [{ t: 'a', done: false }, { t: 'b', done: false }] }, { items: [{ t: 'a', done: false }, { t: 'b', done: true }] })).toEqual([
      { op: 'replace', path: '/items/1/done', value: true },
    ]);
    expect(expectPatchFrom({ 'a/b': [1] }, { 'a/b': [2] })).toEqual([{ op: 'replace', path: '/a~1b/0', value: 2 }]);
    expect(expectPatchFrom({ a: [1] }, null)).toEqual([{ op: 'replace', path: '', value: null }]);
  });

  it('answers nothing for equal documents, whatever the order of their keys', () => {
    expect(documentDiff({ a: [{ x: 1, y: [2] }], b: 2 }, { b: 2, a: [{ y: [2], x: 1 }] })).toEqual([]);
  });

  it('replaces an array wholesale when most of its elements change', () => {
    expect(expectPatchFrom({ list: [1, 2, 3, 4] }, { list: [5, 6, 7, 4] })).toEqual([{ op: 'replace', path: '/list', value: [5, 6, 7, 4] }]);
    expect(expectPatchFrom({ list: [] }, { list: [1, 2] })).toEqual([{ op: 'replace', path: '/list', value: [1, 2] }]);
  });

  it('gives a patch from before to after for random edits of random documents, large arrays included', () => {
    const next = random(6902);
    for (let round = 0; round < 500; round += 1) {
      const list = Array.from({ length: Math.floor(next() * 12) }, () => value(next, 3));
      const before = { list, other: value(next, 2), nested: { list: [...list] } };
      const after = { list: edited(next, list, Math.floor(next() * 4)), other: value(next, 2), nested: { list: edited(next, list, 1) } };
      expectPatchFrom(before, after);
    }
    for (let round = 0; round < 20; round += 1) {
      const list = Array.from({ length: 5000 }, () => value(next, 2));
      expectPatchFrom({ list }, { list: edited(next, list, 1 + Math.floor(next() * 50)) });
    }
  });

  it('answers one replace for a 100,000-element array whose elements all change, without an edit-distance search', () => {
    const before = { list: Array.from({ length: 100_000 }, (_, index) => index) };
    const after = { list: Array.from({ length: 100_000 }, (_, index) => index + 100_000) };
    expect(expectPatchFrom(before, after)).toEqual([{ op: 'replace', path: '/list', value: after.list }]);
  });

  it('answers one operation for one element added in the middle of a 100,000-element array', () => {
    const before = { list: Array.from({ length: 100_000 }, (_, index) => ({ index })) };
    const after = { list: [...before.list.slice(0, 50_000), { index: 'new' }, ...before.list.slice(50_000)] };
    expect(expectPatchFrom(before, after)).toEqual([{ op: 'add', path: '/list/50000', value: { index: 'new' } }]);
  });
});

describe('documentDiff of long keys nested deep', () => {
  it('answers one replace of the whole document when the paths alone would outweigh it', () => {
    // 40 levels of 200-character keys, with 50 leaves changed at the bottom: each operation's path
    // is ~8 KB, the patch ~400 KB for a ~9 KB document.
    const key = (level: number) => `${'k'.repeat(199)}${level % 10}`;
    const nest = (leaves: Record<string, number>): unknown => {
      let node: unknown = leaves;
      for (let level = 0; level < 40; level += 1) node = { [key(level)]: node };
      return node;
    };
    const leaves = (n: number) => Object.fromEntries(Array.from({ length: 50 }, (_, index) => [`leaf${index}`, n + index]));
    const before = nest(leaves(0));
    const after = nest(leaves(1));

    const patch = expectPatchFrom(before, after);
    expect(patch).toEqual([{ op: 'replace', path: '', value: after }]);
    expect(JSON.stringify(patch).length).toBeLessThan(2 * JSON.stringify(after).length);
  });
});
