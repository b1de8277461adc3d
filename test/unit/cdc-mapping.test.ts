import { describe, expect, it } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { MAX_CONDITION_DEPTH, MAX_CONDITION_NODES, MAX_TOPIC_PLACEHOLDERS } from '../../src/pipeline/cdc/mapping/mapping-compile.ts';
import { mappingPermission, mappingTable, parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { BASE_MAPPING as BASE, mapping } from '../helpers/cdc-mappings.ts';


function parseError(input: unknown): TributaryError {
  try {
    parseMapping(input);
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    const tributary = error as TributaryError;
    expect(tributary.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(tributary.details.field).toBe('mapping');
    return tributary;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

/** The path of the first problem, e.g. `when.and[1].eq[0]`. */
function pathOf(overrides: Record<string, unknown>): unknown {
  return parseError({ ...BASE, ...overrides }).details.path;
}

describe('parseMapping: what a valid mapping becomes', () => {
  it('qualifies a bare table with public, removes duplicate events and leaves absent options out', () => {
    const parsed = parseMapping({ ...BASE, table: 'contacts', events: ['update', 'insert', 'update'] });
    expect(parsed).toEqual({ ...BASE, table: 'public.contacts', events: ['update', 'insert'] });
    expect(Object.keys(parsed)).not.toContain('when');
    expect(mappingTable(parsed)).toEqual({ schema: 'public', name: 'contacts' });
  });

  it('keeps every option and parses its own JSON form back to an equal mapping', () => {
    const parsed = mapping({
      when: { and: [{ changed: 'status' }, { not: { in: ['$row.kind', ['a', 'b']] } }] },
      topic: 'crm.contacts.{$row.status}',
      payload: { id: '$row.id', before: { status: '$old.status' }, tags: ['crm', '$row.kind'] },
      tenantColumn: 'tenant_id',
      key: ['tenant_id', 'id'],
      type: 'contact.changed',
    });
    expect(parseMapping(JSON.parse(JSON.stringify(parsed)))).toEqual(parsed);
  });

  it('copies when and payload, so changing the input afterwards does not change the mapping', () => {
    const when = { eq: ['$row.status', 'active'] };
    const payload = { status: '$row.status' };
    const parsed = mapping({ when, payload });
    when.eq[1] = 'deleted';
    payload.status = '$row.name';
    expect(parsed.when).toEqual({ eq: ['$row.status', 'active'] });
    expect(parsed.payload).toEqual({ status: '$row.status' });
  });

  it('names the permission a model subscription needs as {module}.{model}.read', () => {
    expect(mappingPermission(mapping())).toBe('crm.contacts.read');
  });
});

describe('parseMapping: invalid mappings name the bad field', () => {
  it('rejects a non-object, unknown keys and missing fields', () => {
    expect(parseError('mapping').message).toMatch(/expected object/);
    expect(parseError({ ...BASE, extra: 1 }).message).toMatch(/Unrecognized key: "extra"/);
    const missing = parseError({ name: 'x' });
    expect(missing.details.path).toBe('table');
    expect(missing.message).toMatch(/^Invalid mapping: table: .*; events: .*; topic: .*; module: .*; model: /);
  });

  it('rejects table names that are not schema.table or table', () => {
    for (const table of ['a.b.c', '1contacts', 'crm.con-tacts', '', 'crm.']) {
      expect(pathOf({ table })).toBe('table');
    }
  });

  it('requires a non-empty list of insert, update and delete', () => {
    expect(pathOf({ events: [] })).toBe('events');
    expect(pathOf({ events: ['insert', 'upsert'] })).toBe('events[1]');
    expect(pathOf({ events: 'insert' })).toBe('events');
  });

  it('checks names, module, model, type, tenant column and key', () => {
    expect(pathOf({ name: '' })).toBe('name');
    expect(pathOf({ module: 'crm.x' })).toBe('module');
    expect(pathOf({ model: '9contacts' })).toBe('model');
    expect(pathOf({ type: 'contact changed' })).toBe('type');
    expect(pathOf({ tenantColumn: 'tenant id' })).toBe('tenantColumn');
    expect(pathOf({ key: [] })).toBe('key');
    expect(pathOf({ key: ['id', 'id'] })).toBe('key');
    expect(pathOf({ key: ['id', '$x'] })).toBe('key[1]');
  });

  it('reports the path of a bad condition deep in the tree, and every problem in the message', () => {
    const error = parseError({
      ...BASE,
      when: { and: [{ changed: 'status' }, { or: [{ eq: ['$rows.status', 'a'] }] }, { like: ['$row.name', 'A%'] }] },
    });
    expect(error.details.path).toBe('when.and[1].or[0].eq[0]');
    expect(error.message).toContain('when.and[1].or[0].eq[0]: "$rows.status" is not a reference');
    expect(error.message).toContain('when.and[2]: unknown operator "like"; use one of changed, eq, in, and, or, not');
  });

  it('rejects malformed conditions', () => {
    expect(pathOf({ when: {} })).toBe('when');
    expect(pathOf({ when: 'status' })).toBe('when');
    expect(pathOf({ when: { changed: 'status', eq: ['$row.a', 1] } })).toBe('when');
    expect(pathOf({ when: { changed: 5 } })).toBe('when.changed');
    expect(pathOf({ when: { changed: '$row.status' } })).toBe('when.changed');
    expect(pathOf({ when: { eq: ['$row.status'] } })).toBe('when.eq');
    expect(pathOf({ when: { eq: ['$row.', 1] } })).toBe('when.eq[0]');
    expect(pathOf({ when: { eq: ['$new.status', 1] } })).toBe('when.eq[0]');
    expect(pathOf({ when: { eq: ['$row.status', { a: 1 }] } })).toBe('when.eq[1]');
    expect(pathOf({ when: { eq: ['$row.status', 'x'.repeat(1001)] } })).toBe('when.eq[1]');
    expect(pathOf({ when: { in: ['$row.kind', []] } })).toBe('when.in[1]');
    expect(pathOf({ when: { in: ['$row.kind', 'a'] } })).toBe('when.in');
    expect(pathOf({ when: { in: ['$row.kind', ['a', ['b']]] } })).toBe('when.in[1][1]');
    expect(pathOf({ when: { in: ['$row.kind', Array.from({ length: 101 }, (_, i) => i)] } })).toBe('when.in[1]');
    expect(pathOf({ when: { and: [] } })).toBe('when.and');
    expect(pathOf({ when: { or: {} } })).toBe('when.or');
    expect(pathOf({ when: { not: [] } })).toBe('when.not');
  });

  it(`limits conditions to ${MAX_CONDITION_DEPTH} levels and ${MAX_CONDITION_NODES} operators`, () => {
    let deep: unknown = { changed: 'status' };
    for (let i = 1; i < MAX_CONDITION_DEPTH; i++) deep = { not: deep };
    expect(() => mapping({ when: deep })).not.toThrow();
    const error = parseError({ ...BASE, when: { not: deep } });
    expect(error.message).toMatch(/nest at most 8 levels/);

    const wide = Array.from({ length: MAX_CONDITION_NODES - 1 }, () => ({ changed: 'status' }));
    expect(() => mapping({ when: { or: wide } })).not.toThrow();
    expect(parseError({ ...BASE, when: { or: [...wide, { changed: 'status' }] } }).message).toMatch(/at most 64 operators/);
  });

  it('accepts $$ for a literal leading $, and rejects any other $ string as a bad reference', () => {
    expect(() => mapping({ when: { eq: ['$row.price', '$$5'] }, payload: { currency: '$$' } })).not.toThrow();
    expect(pathOf({ payload: { price: '$5' } })).toBe('payload.price');
  });

  it('rejects topics that are not valid names and malformed placeholders', () => {
    for (const topic of ['', 'crm contacts', 'crm.*', 'crm.>', '.crm', 'crm.{status}', 'crm.{$row.status', 'crm.}x', 'crm.{$row.a{b}}']) {
      expect(pathOf({ topic }), topic).toBe('topic');
    }
    const placeholders = Array.from({ length: MAX_TOPIC_PLACEHOLDERS + 1 }, (_, i) => `{$row.c${i}}`).join('.');
    expect(parseError({ ...BASE, topic: `crm.${placeholders}` }).message).toMatch(/at most 8 placeholders/);
    expect(() => mapping({ topic: 'crm.contacts.{$row.status}.{$old.status}' })).not.toThrow();
  });

  it('rejects payloads that are not objects of literals, references, lists and objects', () => {
    expect(pathOf({ payload: ['$row.id'] })).toBe('payload');
    expect(pathOf({ payload: '$row' })).toBe('payload');
    expect(pathOf({ payload: { 'bad key': '$row.id' } })).toBe('payload');
    expect(pathOf({ payload: JSON.parse('{"__proto__": "$row.id"}') })).toBe('payload');
    expect(pathOf({ payload: { a: { b: [1, Number.POSITIVE_INFINITY] } } })).toBe('payload.a.b[1]');
    let deep: unknown = { id: '$row.id' };
    for (let i = 0; i < 8; i++) deep = { nested: deep };
    expect(parseError({ ...BASE, payload: deep }).message).toMatch(/nests at most 8 levels/);
    const wide = Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`k${i}`, i]));
    expect(parseError({ ...BASE, payload: wide }).message).toMatch(/at most 200 values/);
  });
});
