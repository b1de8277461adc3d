import { describe, expect, it } from 'vitest';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import type { EventPredicate, EventWhere } from '../../src/pipeline/filters/event-filter.ts';
import { compileEventWhere } from '../../src/pipeline/filters/event-filter.ts';
import { compareNumbers, compareScalars, jsonEqual } from '../../src/pipeline/filters/json-compare.ts';

function event(overrides: Partial<RealtimeEvent> = {}): RealtimeEvent {
  return {
    id: 'evt_1',
    topic: 'sync.orders.updated',
    source: 'sync',
    type: 'sync.updated',
    payload: {
      service: 'orders',
      documentId: 'ord_7',
      revision: 3,
      data: { status: 'paid', total: 42, tags: ['a', 'b'], customer: { id: 'c1', vip: true } },
      nothing: null,
      items: [{ sku: 'x' }, { sku: 'y' }],
    },
    metadata: {
      timestamp: 1_700_000_000_000,
      revision: 3,
      scope: { app: 'app', env: 'prod', tenant: 't1' },
      entity: 'ord_7',
    },
    cursor: '0-1',
    ...overrides,
  };
}

function compile(where: EventWhere): EventPredicate {
  const predicate = compileEventWhere(where);
  if (predicate === undefined) throw new Error('expected a predicate');
  return predicate;
}

function matches(where: EventWhere, target: RealtimeEvent = event()): boolean {
  return compile(where)(target);
}

function compileError(where: unknown): TributaryError {
  try {
    compileEventWhere(where as EventWhere);
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    const tributary = error as TributaryError;
    expect(tributary.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(tributary.details).toEqual({ field: 'where' });
    return tributary;
  }
  throw new Error(`expected ${JSON.stringify(where)} to be rejected`);
}

describe('compileEventWhere: no filter', () => {
  it('returns undefined for a null or absent where, meaning every event matches', () => {
    expect(compileEventWhere(null)).toBeUndefined();
    expect(compileEventWhere(undefined)).toBeUndefined();
  });
});

describe('compileEventWhere: operators', () => {
  it('eq matches an equal scalar and rejects a different one', () => {
    expect(matches({ field: 'id', eq: 'evt_1' })).toBe(true);
    expect(matches({ field: 'id', eq: 'evt_2' })).toBe(false);
    expect(matches({ field: 'payload.revision', eq: 3 })).toBe(true);
    expect(matches({ field: 'payload.revision', eq: '3' })).toBe(false);
    expect(matches({ field: 'payload.data.customer.vip', eq: true })).toBe(true);
  });

  it('ne is the negation of eq', () => {
    expect(matches({ field: 'topic', ne: 'sync.orders.updated' })).toBe(false);
    expect(matches({ field: 'topic', ne: 'other' })).toBe(true);
  });

  it('in matches when any item equals the value and rejects otherwise', () => {
    expect(matches({ field: 'payload.data.status', in: ['new', 'paid'] })).toBe(true);
    expect(matches({ field: 'payload.data.status', in: ['new', 'void'] })).toBe(false);
    expect(matches({ field: 'payload.data.status', in: [] })).toBe(false);
  });

  it('nin matches when no item equals the value', () => {
    expect(matches({ field: 'payload.data.status', nin: ['new', 'void'] })).toBe(true);
    expect(matches({ field: 'payload.data.status', nin: ['paid'] })).toBe(false);
    expect(matches({ field: 'payload.data.status', nin: [] })).toBe(true);
  });

  it('gt, gte, lt and lte compare numbers', () => {
    const total = 'payload.data.total';
    expect(matches({ field: total, gt: 41 })).toBe(true);
    expect(matches({ field: total, gt: 42 })).toBe(false);
    expect(matches({ field: total, gte: 42 })).toBe(true);
    expect(matches({ field: total, gte: 43 })).toBe(false);
    expect(matches({ field: total, lt: 43 })).toBe(true);
    expect(matches({ field: total, lt: 42 })).toBe(false);
    expect(matches({ field: total, lte: 42 })).toBe(true);
    expect(matches({ field: total, lte: 41.5 })).toBe(false);
  });

  it('gt, gte, lt and lte compare strings in code-unit order', () => {
    expect(matches({ field: 'id', gt: 'evt_0' })).toBe(true);
    expect(matches({ field: 'id', gte: 'evt_1' })).toBe(true);
    expect(matches({ field: 'id', lt: 'evt_1' })).toBe(false);
    expect(matches({ field: 'id', lte: 'evt_1' })).toBe(true);
    // 'Z' (0x5a) sorts before 'a' (0x61): no locale collation.
    expect(matches({ field: 'payload.word', lt: 'a' }, event({ payload: { word: 'Zebra' } }))).toBe(true);
  });

  it('several operators on one node must all hold', () => {
    expect(matches({ field: 'payload.data.total', gt: 40, lt: 50, ne: 41 })).toBe(true);
    expect(matches({ field: 'payload.data.total', gt: 40, lt: 42 })).toBe(false);
  });

  it('exists: true matches a present value, null included, and exists: false matches a missing one', () => {
    expect(matches({ field: 'payload.nothing', exists: true })).toBe(true);
    expect(matches({ field: 'payload.absent', exists: true })).toBe(false);
    expect(matches({ field: 'payload.absent', exists: false })).toBe(true);
    expect(matches({ field: 'payload.nothing', exists: false })).toBe(false);
    expect(matches({ field: 'metadata.table', exists: false })).toBe(true);
  });

  it('reads every metadata key clients may filter on', () => {
    expect(matches({ field: 'metadata.timestamp', gte: 1_700_000_000_000 })).toBe(true);
    expect(matches({ field: 'metadata.revision', eq: 3 })).toBe(true);
    expect(matches({ field: 'metadata.entity', eq: 'ord_7' })).toBe(true);
    const database = event({
      source: 'database',
      metadata: {
        timestamp: 1,
        table: 'orders',
        operation: 'delete',
        scope: { app: 'a', env: 'e', tenant: undefined },
      },
    });
    expect(matches({ field: 'metadata.table', eq: 'orders' }, database)).toBe(true);
    expect(matches({ field: 'metadata.operation', in: ['update', 'delete'] }, database)).toBe(true);
  });

  it('eq and ne on the whole payload compare it as a JSON object', () => {
    const small = event({ payload: { a: 1, b: [true, null] } });
    expect(matches({ field: 'payload', eq: { b: [true, null], a: 1 } }, small)).toBe(true);
    expect(matches({ field: 'payload', ne: { a: 1 } }, small)).toBe(true);
  });

  it('walks into arrays by canonical index only', () => {
    expect(matches({ field: 'payload.items.1.sku', eq: 'y' })).toBe(true);
    expect(matches({ field: 'payload.items.2.sku', exists: false })).toBe(true);
    expect(matches({ field: 'payload.items.01.sku', exists: false })).toBe(true);
    expect(matches({ field: 'payload.items.length', exists: false })).toBe(true);
  });
});

describe('compileEventWhere: deep equality', () => {
  const target = event({
    payload: { obj: { a: 1, b: { c: [1, 2, { d: 'x' }] } }, list: [1, 'two', null, false], empty: {}, zero: 0 },
  });

  it('compares objects by key set and values, ignoring key order', () => {
    expect(matches({ field: 'payload.obj', eq: { b: { c: [1, 2, { d: 'x' }] }, a: 1 } }, target)).toBe(true);
  });

  it('rejects an object with an extra, a missing or a different key', () => {
    expect(matches({ field: 'payload.obj', eq: { a: 1 } }, target)).toBe(false);
    expect(matches({ field: 'payload.obj', eq: { a: 1, b: { c: [1, 2, { d: 'x' }] }, e: 2 } }, target)).toBe(false);
    expect(matches({ field: 'payload.obj', eq: { a: 1, b: { c: [1, 2, { d: 'y' }] } } }, target)).toBe(false);
  });

  it('compares arrays in order and by length', () => {
    expect(matches({ field: 'payload.list', eq: [1, 'two', null, false] }, target)).toBe(true);
    expect(matches({ field: 'payload.list', eq: ['two', 1, null, false] }, target)).toBe(false);
    expect(matches({ field: 'payload.list', eq: [1, 'two', null] }, target)).toBe(false);
  });

  it('never equates an array with an object, or values of different JSON types', () => {
    expect(matches({ field: 'payload.empty', eq: [] }, target)).toBe(false);
    expect(matches({ field: 'payload.list', eq: { 0: 1, 1: 'two', 2: null, 3: false } }, target)).toBe(false);
    expect(matches({ field: 'payload.zero', eq: false }, target)).toBe(false);
    expect(matches({ field: 'payload.zero', eq: '0' }, target)).toBe(false);
    expect(matches({ field: 'payload.zero', eq: null }, target)).toBe(false);
    expect(matches({ field: 'payload.empty', eq: {} }, target)).toBe(true);
  });

  it('ignores object keys that hold undefined, as JSON would', () => {
    const sparse = event({ payload: { obj: { a: 1, gone: undefined } } });
    expect(matches({ field: 'payload.obj', eq: { a: 1 } }, sparse)).toBe(true);
    expect(matches({ field: 'payload.obj.gone', exists: false }, sparse)).toBe(true);
  });

  it('applies deep equality to in and nin items', () => {
    expect(matches({ field: 'payload.data.tags', in: [['a'], ['a', 'b']] })).toBe(true);
    expect(matches({ field: 'payload.data.customer', in: ['c1', { vip: true, id: 'c1' }] })).toBe(true);
    expect(matches({ field: 'payload.data.customer', nin: [{ id: 'c1' }] })).toBe(true);
    expect(matches({ field: 'payload.data.tags', nin: [['a', 'b']] })).toBe(false);
  });

  it('eq: null matches a null field but not a missing one', () => {
    expect(matches({ field: 'payload.nothing', eq: null })).toBe(true);
    expect(matches({ field: 'payload.absent', eq: null })).toBe(false);
    expect(matches({ field: 'payload.nothing', ne: null })).toBe(false);
    expect(matches({ field: 'payload.nothing', in: [null] })).toBe(true);
  });

  it('does not reach inherited properties such as constructor or __proto__', () => {
    expect(matches({ field: 'payload.constructor', exists: true })).toBe(false);
    expect(matches({ field: 'payload.__proto__', exists: true })).toBe(false);
    expect(matches({ field: 'payload.toString', exists: false })).toBe(true);
  });
});

describe('compileEventWhere: type mismatches and missing fields', () => {
  it('comparisons across types are false in both directions', () => {
    expect(matches({ field: 'payload.revision', gt: '1' })).toBe(false);
    expect(matches({ field: 'payload.revision', lt: '9' })).toBe(false);
    expect(matches({ field: 'id', gt: 0 })).toBe(false);
    expect(matches({ field: 'payload.nothing', gte: 0 })).toBe(false);
    expect(matches({ field: 'payload.data.customer.vip', lte: 1 })).toBe(false);
    expect(matches({ field: 'payload.data.tags', gt: 'a' })).toBe(false);
    expect(matches({ field: 'payload.data', lt: 'z' })).toBe(false);
  });

  it('a missing field fails eq, in, gt, gte, lt, lte and exists: true, and passes ne, nin and exists: false', () => {
    const missing = 'payload.no.such.key';
    expect(matches({ field: missing, eq: 'x' })).toBe(false);
    expect(matches({ field: missing, in: ['x', null] })).toBe(false);
    expect(matches({ field: missing, gt: 0 })).toBe(false);
    expect(matches({ field: missing, gte: '' })).toBe(false);
    expect(matches({ field: missing, lt: 0 })).toBe(false);
    expect(matches({ field: missing, lte: 'z' })).toBe(false);
    expect(matches({ field: missing, exists: true })).toBe(false);
    expect(matches({ field: missing, ne: 'x' })).toBe(true);
    expect(matches({ field: missing, nin: ['x', null] })).toBe(true);
    expect(matches({ field: missing, exists: false })).toBe(true);
  });

  it('walking a path through a scalar yields missing', () => {
    expect(matches({ field: 'payload.revision.deeper', exists: false })).toBe(true);
    expect(matches({ field: 'payload.nothing.deeper', exists: false })).toBe(true);
    expect(matches({ field: 'payload.data.status.length', exists: false })).toBe(true);
  });
});

describe('compileEventWhere: the source enum', () => {
  it('accepts the GraphQL enum names DATABASE, SYNC and SOCKET for the lower-case event values', () => {
    expect(matches({ field: 'source', eq: 'SYNC' })).toBe(true);
    expect(matches({ field: 'source', eq: 'DATABASE' })).toBe(false);
    expect(matches({ field: 'source', ne: 'SOCKET' })).toBe(true);
    expect(matches({ field: 'source', in: ['DATABASE', 'SYNC'] })).toBe(true);
    expect(matches({ field: 'source', nin: ['SYNC'] })).toBe(false);
    expect(matches({ field: 'source', eq: 'database' }, event({ source: 'database' }))).toBe(true);
    expect(matches({ field: 'source', eq: 'Socket' }, event({ source: 'socket' }))).toBe(true);
  });

  it('compares case-sensitively everywhere else', () => {
    expect(matches({ field: 'type', eq: 'SYNC.UPDATED' })).toBe(false);
    expect(matches({ field: 'payload.data.status', eq: 'PAID' })).toBe(false);
  });
});

describe('compileEventWhere: and, or, not', () => {
  it('and requires every child, and an empty and matches', () => {
    expect(matches({ and: [{ field: 'source', eq: 'SYNC' }, { field: 'payload.revision', gte: 3 }] })).toBe(true);
    expect(matches({ and: [{ field: 'source', eq: 'SYNC' }, { field: 'payload.revision', gt: 3 }] })).toBe(false);
    expect(matches({ and: [] })).toBe(true);
  });

  it('or requires one child, and an empty or matches nothing', () => {
    expect(matches({ or: [{ field: 'id', eq: 'nope' }, { field: 'payload.revision', eq: 3 }] })).toBe(true);
    expect(matches({ or: [{ field: 'id', eq: 'nope' }, { field: 'payload.revision', eq: 4 }] })).toBe(false);
    expect(matches({ or: [] })).toBe(false);
  });

  it('not negates its child', () => {
    expect(matches({ not: { field: 'id', eq: 'evt_1' } })).toBe(false);
    expect(matches({ not: { field: 'id', eq: 'evt_2' } })).toBe(true);
    expect(matches({ not: { or: [] } })).toBe(true);
  });

  it('a node ANDs its own comparison with its and, or and not children', () => {
    const where: EventWhere = {
      field: 'source',
      eq: 'SYNC',
      and: [{ field: 'payload.revision', gte: 1 }],
      or: [{ field: 'payload.data.status', eq: 'paid' }, { field: 'payload.data.status', eq: 'new' }],
      not: { field: 'payload.data.customer.vip', eq: false },
    };
    expect(matches(where)).toBe(true);
    expect(matches({ ...where, eq: 'DATABASE' })).toBe(false);
    expect(matches({ ...where, or: [{ field: 'payload.data.status', eq: 'new' }] })).toBe(false);
    expect(matches({ ...where, not: { field: 'payload.data.customer.vip', eq: true } })).toBe(false);
  });

  it('evaluates nested combinations', () => {
    const where: EventWhere = {
      or: [
        { and: [{ field: 'topic', eq: 'other' }, { field: 'id', exists: true }] },
        { not: { or: [{ field: 'payload.data.total', lt: 10 }, { field: 'payload.data.total', gt: 100 }] } },
      ],
    };
    expect(matches(where)).toBe(true);
    expect(matches(where, event({ payload: { data: { total: 500 } } }))).toBe(false);
    expect(matches(where, event({ topic: 'other', payload: { data: { total: 500 } } }))).toBe(true);
  });

  it('treats null children and operators as not given, as graphql-js hands them over', () => {
    const nulls = { and: null, or: null, not: null, in: null, gt: null, exists: null };
    const where: EventWhere = { field: 'id', eq: 'evt_1', ...nulls };
    expect(matches(where)).toBe(true);
  });

  it('accepts the maximum depth and node count', () => {
    let deep: EventWhere = { field: 'id', eq: 'evt_1' };
    for (let level = 1; level < 8; level++) deep = { and: [deep] };
    expect(matches(deep)).toBe(true);
    const wide: EventWhere = { and: Array.from({ length: 63 }, () => ({ field: 'id', exists: true })) };
    expect(matches(wide)).toBe(true);
  });
});

describe('compileEventWhere: invalid filters', () => {
  it('rejects a path with an unknown root and names it', () => {
    const error = compileError({ field: 'cursor', eq: 'x' });
    expect(error.message).toContain('"cursor"');
    expect(error.message).toContain('payload');
    expect(compileError({ field: 'data.status', eq: 'x' }).message).toContain('"data.status"');
  });

  it('rejects metadata.scope and its sub-paths', () => {
    expect(compileError({ field: 'metadata.scope', eq: 'x' }).message).toMatch(/metadata\.scope/);
    expect(compileError({ field: 'metadata.scope.tenant', eq: 't1' }).message).toMatch(/metadata\.scope/);
  });

  it('rejects metadata on its own, unknown metadata keys and sub-paths under metadata keys', () => {
    expect(compileError({ field: 'metadata', exists: true }).message).toContain('metadata.timestamp');
    expect(compileError({ field: 'metadata.cursor', exists: true }).message).toContain('"metadata.cursor"');
    expect(compileError({ field: 'metadata.table.x', exists: true }).message).toContain('"metadata.table.x"');
  });

  it('rejects a sub-path on id, topic, source and type', () => {
    for (const root of ['id', 'topic', 'source', 'type']) {
      expect(compileError({ field: `${root}.length`, gt: 1 }).message).toContain(`"${root}" is a string`);
    }
  });

  it('rejects empty segments and malformed payload keys', () => {
    expect(compileError({ field: 'payload..a', eq: 1 }).message).toContain('empty');
    expect(compileError({ field: 'payload.a.', eq: 1 }).message).toContain('empty');
    expect(compileError({ field: '', eq: 1 }).message).toContain('empty');
    expect(compileError({ field: 'payload.a b', eq: 1 }).message).toContain('payload keys');
    expect(compileError({ field: `payload.${'k'.repeat(101)}`, eq: 1 }).message).toContain('payload keys');
    expect(compileError({ field: `payload${'.k'.repeat(11)}`, eq: 1 }).message).toContain('at most 10');
    expect(matches({ field: `payload${'.k'.repeat(10)}`, exists: false })).toBe(true);
  });

  it('rejects an operator without a field and names the operator', () => {
    expect(compileError({ eq: 1 }).message).toMatch(/eq.*needs a "field"/);
    expect(compileError({ gt: 1, exists: true }).message).toMatch(/gt, exists/);
    expect(compileError({ eq: null }).message).toMatch(/needs a "field"/);
  });

  it('rejects a field without an operator', () => {
    expect(compileError({ field: 'id' }).message).toMatch(/"id".*needs an operator/);
    expect(compileError({ field: 'id', and: [] }).message).toMatch(/needs an operator/);
  });

  it('rejects an empty node, at the root and nested, and says where it is', () => {
    expect(compileError({}).message).toContain('empty filter');
    expect(compileError({ field: null, and: null }).message).toContain('empty filter');
    expect(compileError({ and: [{ field: 'id', exists: true }, {}] }).message).toContain('where.and[1]');
    expect(compileError({ not: {} }).message).toContain('where.not');
  });

  it('rejects nesting deeper than 8 levels', () => {
    let deep: EventWhere = { field: 'id', eq: 'evt_1' };
    for (let level = 1; level < 9; level++) deep = { not: deep };
    expect(compileError(deep).message).toContain('at most 8 levels');
  });

  it('rejects more than 64 nodes in total', () => {
    const wide = { and: Array.from({ length: 64 }, () => ({ field: 'id', exists: true })) };
    expect(compileError(wide).message).toContain('at most 64');
    const leaf = { field: 'id', exists: true };
    const spread = { or: Array.from({ length: 8 }, () => ({ and: Array.from({ length: 8 }, () => leaf) })) };
    expect(compileError(spread).message).toContain('at most 64');
  });

  it('rejects in and nin lists longer than 100 items', () => {
    const items = Array.from({ length: 101 }, (_, i) => i);
    expect(compileError({ field: 'payload.revision', in: items }).message).toContain('at most 100 items');
    expect(compileError({ field: 'payload.revision', nin: items }).message).toContain('at most 100 items');
    expect(matches({ field: 'payload.revision', in: items.slice(0, 100) })).toBe(true);
  });

  it('rejects a gt, gte, lt or lte operand that is not a number or a string', () => {
    expect(compileError({ field: 'payload.revision', gt: true }).message).toContain('expected a number or a string');
    expect(compileError({ field: 'payload.revision', gte: [1] }).message).toContain('got a list');
    expect(compileError({ field: 'payload.revision', lt: { n: 1 } }).message).toContain('got object');
    expect(compileError({ field: 'payload.revision', lte: Number.NaN }).message).toContain('finite');
  });

  it('rejects malformed shapes: non-object nodes, non-list and/or/in, non-boolean exists, unknown keys', () => {
    expect(compileError('id = 1').message).toContain('EventWhere object');
    expect(compileError({ and: [null] }).message).toContain('where.and[0]');
    expect(compileError({ or: { field: 'id', eq: 1 } }).message).toContain('list');
    expect(compileError({ field: 'id', in: 'evt_1' }).message).toContain('list');
    expect(compileError({ field: 'id', exists: 'yes' }).message).toContain('true or false');
    expect(compileError({ field: 'id', equals: 'evt_1' }).message).toContain('"equals"');
    expect(compileError({ field: 7, eq: 1 }).message).toContain('dot path');
  });

  it('rejects operands that are not JSON or nest too deeply', () => {
    expect(compileError({ field: 'id', eq: () => 1 }).message).toContain('JSON value');
    expect(compileError({ field: 'id', eq: Number.POSITIVE_INFINITY }).message).toContain('finite');
    let nested: unknown = 1;
    for (let level = 0; level < 16; level++) nested = [nested];
    expect(compileError({ field: 'payload', eq: nested }).message).toContain('at most 16');
  });
});

describe('compileEventWhere: robustness', () => {
  /** mulberry32: a tiny deterministic PRNG, so a failure reproduces. */
  function prng(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const KEYS = ['a', 'b', 'status', 'total', 'data', 'diff', 'x', 'constructor', '__proto__', '0', 'length'];

  function randomJson(random: () => number, depth: number): unknown {
    const pick = Math.floor(random() * (depth > 3 ? 6 : 8));
    switch (pick) {
      case 0:
        return null;
      case 1:
        return random() < 0.5;
      case 2:
        return Math.floor(random() * 200) - 100;
      case 3:
        return random() * 1000;
      case 4:
        return ['paid', 'new', '', 'SYNC', 'sync', 'évt'][Math.floor(random() * 6)];
      case 5:
        return KEYS[Math.floor(random() * KEYS.length)];
      case 6:
        return Array.from({ length: Math.floor(random() * 4) }, () => randomJson(random, depth + 1));
      default: {
        const object: Record<string, unknown> = {};
        const size = Math.floor(random() * 4);
        for (let i = 0; i < size; i++) {
          object[KEYS[Math.floor(random() * KEYS.length)] as string] = randomJson(random, depth + 1);
        }
        return object;
      }
    }
  }

  /** Mostly well-formed events, sometimes with envelope fields of the wrong JSON type. */
  function randomEvent(random: () => number): RealtimeEvent {
    const wellFormed = random() < 0.7;
    const shape = {
      id: wellFormed ? `evt_${Math.floor(random() * 10)}` : randomJson(random, 2),
      topic: wellFormed ? 'sync.orders.updated' : randomJson(random, 2),
      source: wellFormed ? (['database', 'sync', 'socket'] as const)[Math.floor(random() * 3)] : randomJson(random, 2),
      type: wellFormed ? 'sync.updated' : randomJson(random, 2),
      payload: wellFormed
        ? { data: randomJson(random, 1), total: randomJson(random, 1), ...(randomJson(random, 0) as object) }
        : randomJson(random, 0),
      metadata: wellFormed
        ? { timestamp: Math.floor(random() * 1e12), table: randomJson(random, 2), scope: { app: 'a', env: 'e' } }
        : randomJson(random, 1),
      cursor: '0-0',
    };
    // Deliberately ill-typed: the predicate must survive any JSON in any envelope field.
    return shape as unknown as RealtimeEvent;
  }

  const FILTERS: EventWhere[] = [
    { field: 'id', eq: 'evt_1' },
    { field: 'source', in: ['SYNC', 'DATABASE'] },
    { field: 'payload', eq: { data: null } },
    { field: 'payload.data', eq: { a: [1, { b: null }] } },
    { field: 'payload.data.a.0.b', ne: null },
    { field: 'payload.total', gt: 0, lte: 'z' },
    { field: 'payload.data.status', nin: ['paid', { x: 1 }, [null]] },
    { field: 'payload.constructor.name', exists: true },
    { field: 'payload.__proto__.x', exists: false },
    { field: 'payload.data.length', gte: 1 },
    { field: 'metadata.timestamp', lt: 5e11 },
    { field: 'metadata.table', in: [null, 'orders', ['x']] },
    { field: 'topic', gte: 'sync' },
    { field: 'type', exists: true },
    {
      or: [
        { and: [{ field: 'payload.a', exists: true }, { not: { field: 'payload.a.b', eq: [] } }] },
        { field: 'metadata.entity', exists: false },
        { not: { or: [] } },
      ],
    },
  ];

  it('never throws for 2,000 random JSON events across a fixed set of filters', () => {
    const random = prng(0x7e1b0a);
    const predicates = FILTERS.map(compile);
    let matched = 0;
    let notBoolean = 0;
    for (let n = 0; n < 2000; n++) {
      const target = randomEvent(random);
      for (const predicate of predicates) {
        // A throw fails the test right here, with the seed fixed so it reproduces.
        const result: unknown = predicate(target);
        if (typeof result !== 'boolean') notBoolean++;
        else if (result) matched++;
      }
    }
    expect(notBoolean).toBe(0);
    // Not a tautology: some filters match some events and not others.
    expect(matched).toBeGreaterThan(0);
    expect(matched).toBeLessThan(2000 * predicates.length);
  });
});

describe('json-compare: the one comparison core of event filters, model filters and mapping conditions', () => {
  it('compares JSON strictly by default, and numbers written as text by value when asked', () => {
    expect(jsonEqual({ a: [1, { b: 'x' }], c: undefined }, { a: [1, { b: 'x' }] })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonEqual(5, '5')).toBe(false);
    expect(jsonEqual(5, '5', { numbers: 'by-value' })).toBe(true);
    expect(jsonEqual('10', '10.0', { numbers: 'by-value' })).toBe(false);
    expect(jsonEqual(2n ** 53n + 1n, 2 ** 53)).toBe(false);
    expect(jsonEqual(5n, 5)).toBe(true);
    expect(jsonEqual(new Date(1000), new Date(1000))).toBe(true);
    expect(jsonEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    // Never an inherited property.
    expect(jsonEqual(JSON.parse('{"__proto__": 1}'), {})).toBe(false);
  });

  it('orders numbers with numbers, strings with strings, booleans and dates, and nothing across types', () => {
    expect(compareScalars(9, 10)).toBe(-1);
    expect(compareScalars(10n, 9)).toBe(1);
    expect(compareScalars('b', 'a')).toBe(1);
    expect(compareScalars(true, false)).toBe(1);
    expect(compareScalars(new Date(1), new Date(1))).toBe(0);
    expect(compareScalars('10', 9)).toBeNaN();
    expect(compareScalars(null, null)).toBeNaN();
    expect(compareNumbers(Number.NaN, 1)).toBeNaN();
  });
});
