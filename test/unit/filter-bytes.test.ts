/**
 * What WS_MAX_FILTER_BYTES_PER_SUBJECT charges a subscription (`filterBytesOf`): its root field's
 * filter as JSON, whether written in the operation or passed in variables, reached through
 * fragments — `events(where:)` and `changes(filter:)` — and nothing for the others. Also the
 * budget itself (`createFilterBudget`): per principal, given back once.
 */
import { getOperationAST, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { getSchema } from '../../src/schema/index.ts';
import { createFilterBudget } from '../../src/server/ws/filter-budget.ts';
import { filterBytesOf, rootFieldOf } from '../../src/server/ws/filter-bytes.ts';

function bytesOf(query: string, variables?: Record<string, unknown>): number {
  const document = parse(query);
  const operation = getOperationAST(document);
  if (!operation) throw new Error('no operation');
  return filterBytesOf(getSchema(), operation, rootFieldOf(operation, document), variables);
}

const json = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

describe('filterBytesOf', () => {
  const where = { field: 'payload.city', in: ['Zürich', 'Genève'] };

  it('counts an events filter passed in a variable as its JSON, in UTF-8 bytes', () => {
    expect(bytesOf('subscription ($w: EventWhere) { events(topic: "t", where: $w) { id } }', { w: where })).toBe(json(where));
  });

  it('counts the same filter written in the operation alike, a variable inside it included', () => {
    expect(bytesOf('subscription { events(topic: "t", where: { field: "payload.city", in: ["Zürich", "Genève"] }) { id } }')).toBe(json(where));
    expect(bytesOf('subscription ($c: JSON) { events(topic: "t", where: { field: "payload.city", in: [$c, "Genève"] }) { id } }', { c: 'Zürich' })).toBe(json(where));
  });

  it('counts a model subscription’s filter, and finds the root field through fragments', () => {
    const filter = { status: 'eq.active', age: ['gte.18', 'lt.65'] };
    expect(bytesOf('subscription ($f: JSON) { changes(model: "contacts", filter: $f) { operation } }', { f: filter })).toBe(json(filter));
    expect(bytesOf('subscription ($f: JSON) { ... on Subscription { ...F } } fragment F on Subscription { changes(model: "contacts", filter: $f) { operation } }', { f: filter })).toBe(json(filter));
  });

  it('counts nothing without a filter, for a null one, or for a field that takes none', () => {
    expect(bytesOf('subscription { events(topic: "t") { id } }')).toBe(0);
    expect(bytesOf('subscription ($w: EventWhere) { events(topic: "t", where: $w) { id } }', { w: null })).toBe(0);
    expect(bytesOf('subscription { channel(name: "room") { event } }')).toBe(0);
  });

  it('counts nothing for variables the execution refuses anyway', () => {
    expect(bytesOf('subscription ($w: EventWhere) { events(topic: "t", where: $w) { id } }', { w: 'not an object' })).toBe(0);
  });
});

describe('createFilterBudget', () => {
  const principal = (subject: string, tenant = 'tenant-a'): Principal => ({ app: 'shop', env: 'prod', tenant, subject, roles: [], permissions: [], expiresAt: undefined });

  it('holds each principal’s bytes apart, up to the budget exactly, and takes each give-back once', () => {
    const budget = createFilterBudget(100);
    const first = budget.take(principal('alice'), 60);
    expect(first).toBeDefined();
    expect(budget.take(principal('alice'), 41)).toBeUndefined();
    expect(budget.take(principal('alice', 'tenant-b'), 100)).toBeDefined();
    expect(budget.take(principal('bob'), 100)).toBeDefined();
    const second = budget.take(principal('alice'), 40);
    expect(second).toBeDefined();
    first?.();
    first?.();
    expect(budget.take(principal('alice'), 61)).toBeUndefined();
    expect(budget.take(principal('alice'), 60)).toBeDefined();
  });

  it('refuses with RATE_LIMITED naming the setting', () => {
    const error = createFilterBudget(100).refusal(101);
    expect(error.extensions).toEqual({ code: 'RATE_LIMITED' });
    expect(error.message).toContain('WS_MAX_FILTER_BYTES_PER_SUBJECT (100 bytes as JSON; this one: 101)');
  });

  it('holds no budget when the maximum is undefined (development mode)', () => {
    const budget = createFilterBudget(undefined);
    expect(budget.take(principal('dev'), 10 ** 9)).toBeDefined();
  });
});
