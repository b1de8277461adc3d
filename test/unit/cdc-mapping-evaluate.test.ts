import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../src/errors.ts';
import { assertName } from '../../src/pipeline/names.ts';
import type { RowChange, RowImage } from '../../src/pipeline/cdc/row-change.ts';
import type { DomainMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { UnroutableRowError, encodeTopicSegment, evaluateMapping } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import { mapping } from '../helpers/cdc-mappings.ts';


function change(partial: Partial<RowChange> & Pick<RowChange, 'operation'>): RowChange {
  return {
    table: { schema: 'crm', name: 'contacts' },
    keyColumns: ['id'],
    new: undefined,
    old: undefined,
    unchangedToastColumns: [],
    lsn: '0/16B3748',
    lsnIndex: 0,
    ...partial,
  };
}

const insert = (row: RowImage) => change({ operation: 'insert', new: row });
const update = (row: RowImage, old?: RowImage, unchangedToastColumns: string[] = []) =>
  change({ operation: 'update', new: row, old, unchangedToastColumns });
const remove = (old: RowImage | undefined) => change({ operation: 'delete', old });

const ROW = { id: 7, tenant_id: 't1', status: 'active', name: 'Ada', vip: false };

function unroutable(run: () => unknown): UnroutableRowError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UnroutableRowError);
    return error as UnroutableRowError;
  }
  throw new Error('expected the row to be unroutable');
}

function emitted(m: DomainMapping, c: RowChange): boolean {
  return evaluateMapping(m, c) !== undefined;
}

describe('evaluateMapping: events', () => {
  it('turns an insert into a CREATED event with the full row as payload and record', () => {
    const event = evaluateMapping(mapping({ tenantColumn: 'tenant_id' }), insert(ROW));
    expect(event).toEqual({
      topic: 'crm.contacts',
      type: 'contacts.created',
      entityKey: '7',
      tenant: 't1',
      payload: ROW,
      record: ROW,
      operation: 'CREATED',
      action: 'insert',
    });
  });

  it('names updates and deletes, and uses the configured type when there is one', () => {
    expect(evaluateMapping(mapping(), update(ROW))?.type).toBe('contacts.updated');
    expect(evaluateMapping(mapping(), update(ROW))?.operation).toBe('UPDATED');
    expect(evaluateMapping(mapping(), remove({ id: 7 }))).toMatchObject({ type: 'contacts.deleted', operation: 'DELETED' });
    expect(evaluateMapping(mapping({ type: 'contact.changed' }), remove({ id: 7 }))?.type).toBe('contact.changed');
  });

  it('returns nothing for operations the mapping does not list, other tables, and a false condition', () => {
    expect(evaluateMapping(mapping({ events: ['insert'] }), update(ROW))).toBeUndefined();
    expect(evaluateMapping(mapping(), { ...insert(ROW), table: { schema: 'public', name: 'contacts' } })).toBeUndefined();
    expect(evaluateMapping(mapping({ when: { eq: ['$row.status', 'archived'] } }), insert(ROW))).toBeUndefined();
  });

  it('builds the payload from references and literals, with $old null on insert and $$ unescaped', () => {
    const m = mapping({
      payload: { id: '$row.id', source: 'crm', price: '$$5', flags: [true, '$row.vip'], before: { status: '$old.status' } },
    });
    expect(evaluateMapping(m, insert(ROW))?.payload).toEqual({
      id: 7,
      source: 'crm',
      price: '$5',
      flags: [true, false],
      before: { status: null },
    });
    expect(evaluateMapping(m, update({ ...ROW, status: 'lead' }, ROW))?.payload).toMatchObject({ before: { status: 'active' } });
  });

  it('takes the tenant from the tenant column as text, and leaves it undefined without one', () => {
    expect(evaluateMapping(mapping({ tenantColumn: 'tenant_id' }), insert({ ...ROW, tenant_id: 42 }))?.tenant).toBe('42');
    expect(evaluateMapping(mapping({ tenantColumn: 'tenant_id' }), insert({ ...ROW, tenant_id: 42n }))?.tenant).toBe('42');
    expect(evaluateMapping(mapping(), insert(ROW))?.tenant).toBeUndefined();
  });

  it('refuses to route a row whose tenant is null or empty rather than publish it tenant-less', () => {
    const m = mapping({ tenantColumn: 'tenant_id' });
    expect(unroutable(() => evaluateMapping(m, insert({ ...ROW, tenant_id: null }))).reason).toBe('tenant-invalid');
    expect(unroutable(() => evaluateMapping(m, insert({ ...ROW, tenant_id: '' }))).reason).toBe('tenant-invalid');
    const error = unroutable(() => evaluateMapping(m, insert({ ...ROW, tenant_id: { secret: 'x' } })));
    expect(error.message).not.toContain('secret');
    expect(error.mapping).toBe('contacts');
  });

  it('builds a stable entity key: one column as text, several percent-encoded and joined by /', () => {
    expect(evaluateMapping(mapping(), update({ ...ROW, id: 'c/1' }))?.entityKey).toBe('c/1');
    const composite = mapping({ key: ['tenant_id', 'id'] });
    expect(evaluateMapping(composite, insert({ ...ROW, tenant_id: 'a/b', id: 1 }))?.entityKey).toBe('a%2Fb/1');
    expect(evaluateMapping(composite, insert({ ...ROW, tenant_id: 'a', id: 'b/1' }))?.entityKey).toBe('a/b%2F1');
    const byChange = change({ operation: 'insert', new: ROW, keyColumns: ['tenant_id', 'id'] });
    expect(evaluateMapping(mapping(), byChange)?.entityKey).toBe('t1/7');
    expect(evaluateMapping(mapping(), { ...byChange, lsn: '0/99' })?.entityKey).toBe('t1/7');
  });

  it('refuses to route a row without key values', () => {
    expect(unroutable(() => evaluateMapping(mapping(), change({ operation: 'insert', new: ROW, keyColumns: [] }))).reason).toBe(
      'key-unavailable',
    );
    expect(unroutable(() => evaluateMapping(mapping({ key: ['email'] }), insert(ROW))).reason).toBe('key-unavailable');
  });

  it('refuses to route a row whose tenant is over 200 characters or entity key over 1024 bytes (they go into indexed columns)', () => {
    const m = mapping({ tenantColumn: 'tenant_id' });
    expect(evaluateMapping(m, insert({ ...ROW, tenant_id: 't'.repeat(200), id: 'k'.repeat(1024) }))).toMatchObject({ tenant: 't'.repeat(200), entityKey: 'k'.repeat(1024) });
    expect(unroutable(() => evaluateMapping(m, insert({ ...ROW, tenant_id: 't'.repeat(201) }))).reason).toBe('tenant-invalid');
    const key = unroutable(() => evaluateMapping(m, insert({ ...ROW, id: 'k'.repeat(1025) })));
    expect(key.reason).toBe('key-invalid');
    expect(key.message).toContain('1025 bytes, over 1024');
    expect(key.message).not.toContain('kkk');
    // Bytes, not characters: 342 CJK characters are 1,026 bytes.
    expect(unroutable(() => evaluateMapping(m, insert({ ...ROW, id: '注'.repeat(342) }))).reason).toBe('key-invalid');
    // A composite key is measured as stored, its parts URI-encoded: 150 + 1 + 900 bytes.
    expect(unroutable(() => evaluateMapping(mapping({ key: ['tenant_id', 'id'] }), insert({ ...ROW, tenant_id: 't'.repeat(150), id: 'k'.repeat(900) }))).reason).toBe('key-invalid');
  });

  it('routes a 250-character URL primary key and a 100-character CJK key, alone or in a composite key (encoded)', () => {
    const url = `https://example.com/${'p'.repeat(230)}`;
    const cjk = '注文'.repeat(50);
    expect([url.length, cjk.length]).toEqual([250, 100]);
    expect(evaluateMapping(mapping(), insert({ ...ROW, id: url }))?.entityKey).toBe(url);
    expect(evaluateMapping(mapping(), insert({ ...ROW, id: cjk }))?.entityKey).toBe(cjk);
    // Encoded, each CJK character is 9 bytes (900) and the URL's : and / 3 each (258): both still under 1024.
    const composite = mapping({ key: ['tenant_id', 'id'] });
    expect(evaluateMapping(composite, insert({ ...ROW, id: url }))?.entityKey).toBe(`t1/${encodeURIComponent(url)}`);
    expect(evaluateMapping(composite, insert({ ...ROW, id: cjk }))?.entityKey).toBe(`t1/${encodeURIComponent(cjk)}`);
  });

  it('keeps a column named __proto__ as data instead of changing the record prototype', () => {
    const row = JSON.parse('{"id": 1, "__proto__": {"polluted": true}}') as RowImage;
    const record = evaluateMapping(mapping(), insert(row))?.record ?? {};
    expect(Object.hasOwn(record, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    expect((record as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('applies a changed mapping at once, and refuses a hand-built invalid one', () => {
    expect(evaluateMapping(mapping(), insert(ROW))?.topic).toBe('crm.contacts');
    expect(evaluateMapping(mapping({ topic: 'crm.people' }), insert(ROW))?.topic).toBe('crm.people');
    const handBuilt: DomainMapping = { ...mapping(), topic: 'crm.*' };
    expect(() => evaluateMapping(handBuilt, insert(ROW))).toThrow(TributaryError);
  });
});

describe('evaluateMapping: the default entity key', () => {
  // With REPLICA IDENTITY FULL, Postgres reports every column of the row as a key column.
  const full = (partial: Partial<RowChange> & Pick<RowChange, 'operation'>) => change({ keyColumns: Object.keys(ROW), ...partial });

  it('takes the primary key the caller passes when the mapping sets no key, so it stays stable across updates', () => {
    const options = { primaryKey: ['id'] };
    expect(evaluateMapping(mapping(), full({ operation: 'insert', new: ROW }), options)?.entityKey).toBe('7');
    const renamed = full({ operation: 'update', new: { ...ROW, status: 'lead' }, old: ROW });
    expect(evaluateMapping(mapping(), renamed, options)?.entityKey).toBe('7');
    expect(evaluateMapping(mapping(), full({ operation: 'delete', old: ROW }), options)?.entityKey).toBe('7');
    expect(evaluateMapping(mapping(), renamed, { primaryKey: ['tenant_id', 'id'] })?.entityKey).toBe('t1/7');
  });

  it('prefers an explicit key in the mapping over the primary key', () => {
    expect(evaluateMapping(mapping({ key: ['name'] }), insert(ROW), { primaryKey: ['id'] })?.entityKey).toBe('Ada');
  });

  it('falls back to the change key columns when no primary key is passed or it is empty', () => {
    const row = full({ operation: 'insert', new: ROW });
    expect(evaluateMapping(mapping(), row)?.entityKey).toBe('7/t1/active/Ada/false');
    expect(evaluateMapping(mapping(), row, {})?.entityKey).toBe('7/t1/active/Ada/false');
    expect(evaluateMapping(mapping(), row, { primaryKey: [] })?.entityKey).toBe('7/t1/active/Ada/false');
  });

  it('refuses to route a row that lacks a primary key column, or has neither a primary key nor key columns', () => {
    const byIndex = change({ operation: 'delete', keyColumns: ['email'], old: { email: 'ada@example.com' } });
    const missing = unroutable(() => evaluateMapping(mapping(), byIndex, { primaryKey: ['id'] }));
    expect(missing.reason).toBe('key-unavailable');
    expect(missing.message).toContain('key column "id" is not in the row image');
    const keyless = change({ operation: 'insert', new: ROW, keyColumns: [] });
    const none = unroutable(() => evaluateMapping(mapping(), keyless, { primaryKey: [] }));
    expect(none.reason).toBe('key-unavailable');
    expect(none.message).toContain('add a primary key or set "key"');
  });
});

describe('evaluateMapping: conditions', () => {
  it('evaluates eq, in, and, or and not', () => {
    const row = insert(ROW);
    expect(emitted(mapping({ when: { eq: ['$row.status', 'active'] } }), row)).toBe(true);
    expect(emitted(mapping({ when: { eq: ['active', '$row.status'] } }), row)).toBe(true);
    expect(emitted(mapping({ when: { eq: ['$row.vip', false] } }), row)).toBe(true);
    expect(emitted(mapping({ when: { eq: ['$row.vip', 'false'] } }), row)).toBe(false);
    expect(emitted(mapping({ when: { in: ['$row.status', ['lead', 'active']] } }), row)).toBe(true);
    expect(emitted(mapping({ when: { in: ['$row.status', ['lead']] } }), row)).toBe(false);
    // The list holds literals only: "$row.status" there is text, not a reference.
    expect(emitted(mapping({ when: { in: ['$row.status', ['$row.status']] } }), row)).toBe(false);
    expect(emitted(mapping({ when: { in: ['$row.price', ['$5']] } }), insert({ ...ROW, price: '$5' }))).toBe(true);
    expect(emitted(mapping({ when: { and: [{ eq: ['$row.id', 7] }, { eq: ['$row.status', 'lead'] }] } }), row)).toBe(false);
    expect(emitted(mapping({ when: { or: [{ eq: ['$row.id', 8] }, { eq: ['$row.status', 'active'] }] } }), row)).toBe(true);
    expect(emitted(mapping({ when: { not: { eq: ['$row.status', 'active'] } } }), row)).toBe(false);
  });

  it('compares null with null, and values by JSON content', () => {
    expect(emitted(mapping({ when: { eq: ['$row.deleted_at', null] } }), insert({ ...ROW, deleted_at: null }))).toBe(true);
    expect(emitted(mapping({ when: { eq: ['$row.deleted_at', null] } }), insert({ ...ROW, deleted_at: 0 }))).toBe(false);
    const jsonb = update({ ...ROW, tags: { b: [1, 2], a: 'x' } }, { ...ROW, tags: { a: 'x', b: [1, 2] } });
    expect(emitted(mapping({ when: { eq: ['$row.tags', '$old.tags'] } }), jsonb)).toBe(true);
  });

  it('compares numbers, bigints and decimal strings by value, but two strings as strings', () => {
    const amount = (value: unknown) => insert({ ...ROW, amount: value });
    const is10 = mapping({ when: { eq: ['$row.amount', 10] } });
    expect(emitted(is10, amount(10))).toBe(true);
    expect(emitted(is10, amount(10n))).toBe(true);
    expect(emitted(is10, amount('10'))).toBe(true);
    expect(emitted(is10, amount('10.0'))).toBe(true);
    expect(emitted(is10, amount('010'))).toBe(false);
    expect(emitted(is10, amount('ten'))).toBe(false);
    expect(emitted(mapping({ when: { eq: ['$row.amount', '10'] } }), amount('10.0'))).toBe(false);
    // Exact beyond 2^53: a bigint is never rounded to the nearest double to compare.
    const twoTo53 = mapping({ when: { in: ['$row.amount', [1, 2 ** 53]] } });
    expect(emitted(twoTo53, amount(2n ** 53n))).toBe(true);
    expect(emitted(twoTo53, amount(2n ** 53n + 1n))).toBe(false);
    const same = mapping({ when: { eq: ['$row.amount', '$old.amount'] } });
    expect(emitted(same, update({ id: 7, amount: 2n ** 53n + 1n }, { id: 7, amount: '9007199254740993' }))).toBe(true);
    expect(emitted(same, update({ id: 7, amount: 2n ** 53n + 1n }, { id: 7, amount: '9007199254740992' }))).toBe(false);
  });

  it('changed: true on insert and delete, and on update only when the value differs', () => {
    const m = mapping({ when: { changed: 'status' } });
    expect(emitted(m, insert(ROW))).toBe(true);
    expect(emitted(m, remove(ROW))).toBe(true);
    expect(emitted(m, update({ ...ROW, status: 'lead' }, ROW))).toBe(true);
    expect(emitted(m, update({ ...ROW, name: 'Grace' }, ROW))).toBe(false);
    expect(emitted(mapping({ when: { not: { changed: 'status' } } }), update({ ...ROW, name: 'Grace' }, ROW))).toBe(true);
  });

  it('changed: assumes a change when Postgres sent no old value for a non-key column', () => {
    expect(emitted(mapping({ when: { changed: 'status' } }), update(ROW))).toBe(true);
    expect(emitted(mapping({ when: { changed: 'status' } }), update(ROW, { id: 6 }))).toBe(true);
  });

  it('changed: knows a key column is unchanged when no old key was sent, and changed when one was', () => {
    const m = mapping({ when: { changed: 'id' } });
    expect(emitted(m, update(ROW))).toBe(false);
    expect(emitted(m, update(ROW, { id: 6 }))).toBe(true);
    expect(emitted(mapping({ when: { eq: ['$old.id', 7] } }), update(ROW))).toBe(true);
  });

  it('treats a condition on a value Postgres did not send as unknown, which not cannot turn into true', () => {
    const keyOnly = remove({ id: 7 });
    const isPrivate = { eq: ['$row.visibility', 'private'] };
    expect(emitted(mapping({ when: isPrivate }), keyOnly)).toBe(false);
    expect(emitted(mapping({ when: { not: isPrivate } }), keyOnly)).toBe(false);
    expect(emitted(mapping({ when: { in: ['$row.visibility', ['public']] } }), keyOnly)).toBe(false);
    expect(emitted(mapping({ when: { and: [isPrivate, { eq: ['$row.id', 7] }] } }), keyOnly)).toBe(false);
    expect(emitted(mapping({ when: { or: [isPrivate, { eq: ['$row.id', 7] }] } }), keyOnly)).toBe(true);
    expect(emitted(mapping({ when: { not: { and: [isPrivate, { eq: ['$row.id', 8] }] } } }), keyOnly)).toBe(true);
  });
});

describe('evaluateMapping: unchanged TOASTed columns', () => {
  const m = mapping({ payload: { id: '$row.id', bio: '$row.bio', list: ['$row.bio'] } });
  const after = { id: 7, name: 'Ada' };

  it('takes the value from the old row when Postgres sent one (REPLICA IDENTITY FULL)', () => {
    const event = evaluateMapping(m, update(after, { id: 7, name: 'Ann', bio: 'long text' }, ['bio']));
    expect(event?.record).toEqual({ id: 7, name: 'Ada', bio: 'long text' });
    expect(event?.payload).toEqual({ id: 7, bio: 'long text', list: ['long text'] });
  });

  it('leaves the column out of payload and record instead of turning it into null', () => {
    const event = evaluateMapping(m, update(after, undefined, ['bio']));
    expect(event?.record).toEqual({ id: 7, name: 'Ada' });
    expect(Object.hasOwn(event?.record ?? {}, 'bio')).toBe(false);
    expect(event?.payload).toEqual({ id: 7, list: [null] });
    expect(Object.hasOwn(event?.payload ?? {}, 'bio')).toBe(false);
  });

  it('never counts an unchanged TOASTed column as changed, and compares it only when known', () => {
    expect(emitted(mapping({ when: { changed: 'bio' } }), update(after, undefined, ['bio']))).toBe(false);
    expect(emitted(mapping({ when: { changed: 'bio' } }), update(after, { ...after, bio: 'x' }, ['bio']))).toBe(false);
    const isX = mapping({ when: { eq: ['$row.bio', 'x'] } });
    expect(emitted(isX, update(after, { ...after, bio: 'x' }, ['bio']))).toBe(true);
    expect(emitted(isX, update(after, undefined, ['bio']))).toBe(false);
    expect(emitted(mapping({ when: { not: { eq: ['$row.bio', 'x'] } } }), update(after, undefined, ['bio']))).toBe(false);
  });
});

describe('evaluateMapping: deletes that carry only the key', () => {
  it('routes by a tenant that is part of the key, with only the known columns in payload and record', () => {
    const m = mapping({ tenantColumn: 'tenant_id', payload: { id: '$row.id', name: '$row.name', was: '$old.id' } });
    const event = evaluateMapping(m, change({ operation: 'delete', keyColumns: ['tenant_id', 'id'], old: { tenant_id: 't1', id: 7 } }));
    expect(event).toMatchObject({ tenant: 't1', entityKey: 't1/7', operation: 'DELETED' });
    expect(event?.payload).toEqual({ id: 7, was: 7 });
    expect(event?.record).toEqual({ tenant_id: 't1', id: 7 });
  });

  it('refuses to route a delete whose old row lacks the tenant column', () => {
    const error = unroutable(() => evaluateMapping(mapping({ tenantColumn: 'tenant_id' }), remove({ id: 7 })));
    expect(error.reason).toBe('tenant-unavailable');
    expect(error.message).toContain('"tenant_id"');
  });

  it('sends the full old row as record with REPLICA IDENTITY FULL', () => {
    expect(evaluateMapping(mapping({ tenantColumn: 'tenant_id' }), remove(ROW))).toMatchObject({ record: ROW, tenant: 't1' });
  });
});

describe('evaluateMapping: templated topics', () => {
  const m = mapping({ topic: 'crm.contacts.{$row.status}' });
  const topicFor = (status: unknown) => evaluateMapping(m, insert({ ...ROW, status }))?.topic;

  it('fills placeholders from the row; scalars become text', () => {
    expect(topicFor('active')).toBe('crm.contacts.active');
    expect(topicFor('in_progress-2')).toBe('crm.contacts.in_progress-2');
    expect(topicFor(42)).toBe('crm.contacts.42');
    expect(topicFor(true)).toBe('crm.contacts.true');
    expect(topicFor(new Date('2024-05-01T10:00:00Z'))).toBe('crm.contacts.2024-05-01T10:3A00:3A00:2E000Z');
    expect(evaluateMapping(mapping({ topic: 'crm.{$old.status}.to.{$row.status}' }), update(ROW, { ...ROW, status: 'lead' }))?.topic).toBe(
      'crm.lead.to.active',
    );
  });

  it('encodes dots, wildcards and separators so a value stays one topic segment', () => {
    for (const [value, topic] of [
      ['admin.secret', 'crm.contacts.admin:2Esecret'],
      ['*', 'crm.contacts.:2A'],
      ['>', 'crm.contacts.:3E'],
      ['a/b c', 'crm.contacts.a:2Fb:20c'],
      ['é', 'crm.contacts.:C3:A9'],
    ] as const) {
      const built = topicFor(value) ?? '';
      expect(built).toBe(topic);
      expect(assertName('topic', built)).toBe(built);
      expect(built.split('.')).toHaveLength(3);
    }
  });

  it('encodes injectively: no value can produce the topic of another value', () => {
    const values = ['a.b', 'a:2Eb', 'a:b', 'a_b', 'a-b', 'a%2Eb', 'A.b'];
    const topics = values.map((value) => topicFor(value));
    expect(new Set(topics).size).toBe(values.length);
    expect(encodeTopicSegment('a:2Eb')).toBe('a:3A2Eb');
    expect(encodeTopicSegment('plain_Text-1')).toBe('plain_Text-1');
  });

  it('refuses to route a row whose placeholder value is missing, empty or not a scalar', () => {
    for (const status of [null, '', { a: 1 }, ['a']]) {
      expect(unroutable(() => topicFor(status)).reason).toBe('topic-value-invalid');
    }
    const keyOnly = unroutable(() => evaluateMapping(m, remove({ id: 7 })));
    expect(keyOnly.reason).toBe('topic-value-invalid');
    expect(keyOnly.message).toContain('unavailable');
  });

  it('refuses a topic that grows past the name length limit', () => {
    expect(unroutable(() => topicFor('x'.repeat(190))).reason).toBe('topic-invalid');
  });
});

describe('evaluateMapping: soft deletes (seed 004)', () => {
  const soft = (overrides: Record<string, unknown> = {}) => mapping({ tenantColumn: 'tenant_id', softDeleteColumn: 'deleted_at', ...overrides });
  const LIVE = { ...ROW, deleted_at: null };
  const GONE = { ...ROW, deleted_at: '2026-01-02T03:04:05Z' };

  it('announces an update that sets the column as a delete, with the full record and the deleted type', () => {
    expect(evaluateMapping(soft(), update(GONE, LIVE))).toEqual({
      topic: 'crm.contacts',
      type: 'contacts.deleted',
      entityKey: '7',
      tenant: 't1',
      payload: GONE,
      record: GONE,
      operation: 'DELETED',
      action: 'delete',
    });
  });

  it('announces an update that clears the column as a create', () => {
    expect(evaluateMapping(soft(), update(LIVE, GONE))).toMatchObject({ type: 'contacts.created', operation: 'CREATED', action: 'insert', record: LIVE });
  });

  it('treats a boolean flag the same way: false → true deletes, true → false restores', () => {
    const flag = soft({ softDeleteColumn: 'is_deleted' });
    expect(evaluateMapping(flag, update({ ...ROW, is_deleted: true }, { ...ROW, is_deleted: false }))?.operation).toBe('DELETED');
    expect(evaluateMapping(flag, update({ ...ROW, is_deleted: false }, { ...ROW, is_deleted: true }))?.operation).toBe('CREATED');
    expect(evaluateMapping(flag, update({ ...ROW, name: 'B', is_deleted: false }, { ...ROW, is_deleted: false }))?.operation).toBe('UPDATED');
  });

  it('announces nothing for a soft-deleted row that is updated, inserted already deleted, or then deleted for good', () => {
    const later = { ...GONE, deleted_at: '2026-02-02T00:00:00Z', name: 'Changed' };
    expect(evaluateMapping(soft(), update(later, GONE))).toBeUndefined();
    expect(evaluateMapping(soft(), insert(GONE))).toBeUndefined();
    expect(evaluateMapping(soft(), remove(GONE))).toBeUndefined();
  });

  it('keeps ordinary inserts, updates and hard deletes of live rows as they are', () => {
    expect(evaluateMapping(soft(), insert(LIVE))?.operation).toBe('CREATED');
    expect(evaluateMapping(soft(), update({ ...LIVE, name: 'B' }, LIVE))).toMatchObject({ operation: 'UPDATED', action: 'update' });
    expect(evaluateMapping(soft(), remove(LIVE))).toMatchObject({ operation: 'DELETED', action: 'delete' });
  });

  it('checks the announced operation against events: a soft delete needs "delete", a restore "insert"', () => {
    expect(evaluateMapping(soft({ events: ['update'] }), update(GONE, LIVE))).toBeUndefined();
    expect(evaluateMapping(soft({ events: ['update', 'delete'] }), update(GONE, LIVE))?.operation).toBe('DELETED');
    expect(evaluateMapping(soft({ events: ['update', 'delete'] }), update(LIVE, GONE))).toBeUndefined();
  });

  it('without the old value keeps the update an update rather than guess', () => {
    expect(evaluateMapping(soft(), update(GONE))).toMatchObject({ operation: 'UPDATED', action: 'update' });
  });

  it('is validated as a column name', () => {
    let refused: unknown;
    try {
      mapping({ softDeleteColumn: 'deleted at' });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(TributaryError);
    expect((refused as TributaryError).details).toMatchObject({ path: 'softDeleteColumn' });
    expect(soft().softDeleteColumn).toBe('deleted_at');
  });
});
