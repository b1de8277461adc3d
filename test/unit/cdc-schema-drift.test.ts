/**
 * Schema drift (`mapping-drift.ts`): a change whose table, as Postgres describes it in the stream
 * (`RowChange.relationColumns`), lacks a column its mapping's tenant, key, soft delete or `when`
 * reads — dropped or renamed since the mapping was saved, or added after the change was committed —
 * is unroutable (`column-missing`), never silently skipped, and logged at warn at most once a minute
 * per relation description and mapping while every such change is counted. A column only the topic
 * template or the payload reads is no drift (the payload leaves it out); an absent unchanged TOASTed
 * value, a delete's key-only old row or a generated column are none either.
 */
import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { bindingEvents, type MappedBinding } from '../../src/pipeline/cdc/binding-events.ts';
import { columnDrift } from '../../src/pipeline/cdc/mapping/mapping-drift.ts';
import { evaluateChange, UnroutableRowError } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import type { RowChange, RowImage } from '../../src/pipeline/cdc/row-change.ts';
import { columnParser } from '../../src/pipeline/cdc/row-values.ts';
import { toRowChange } from '../../src/pipeline/cdc/wal/pgoutput-decode.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

const COLUMNS = ['id', 'tenant_id', 'status', 'name', 'deleted_at'];
const ROW = { id: 7, tenant_id: 't1', status: 'active', name: 'Ada', deleted_at: null };

function change(partial: Partial<RowChange> & Pick<RowChange, 'operation'>, relationColumns: readonly string[] | undefined = COLUMNS): RowChange {
  return {
    table: { schema: 'crm', name: 'contacts' },
    keyColumns: ['id'],
    new: undefined,
    old: undefined,
    unchangedToastColumns: [],
    lsn: '0/16B3748',
    lsnIndex: 0,
    ...(relationColumns !== undefined && { relationColumns }),
    ...partial,
  };
}

/** The table's columns after `ALTER TABLE … DROP COLUMN drop`. */
function altered(drop: string): readonly string[] {
  return COLUMNS.filter((column) => column !== drop);
}

const without = (row: RowImage, column: string): RowImage => Object.fromEntries(Object.entries(row).filter(([name]) => name !== column));

function unroutable(run: () => unknown): UnroutableRowError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UnroutableRowError);
    return error as UnroutableRowError;
  }
  throw new Error('expected the row to be unroutable');
}

const ACTIVE = mapping({ name: 'active', tenantColumn: 'tenant_id', when: { eq: ['$row.status', 'active'] } });

describe('a mapping whose table changed since its save', () => {
  it('makes a change whose table lost a column its `when` reads unroutable, naming the mapping, the column and where it is used, never a value', () => {
    const columns = altered('status');
    const error = unroutable(() => evaluateChange(ACTIVE, change({ operation: 'insert', new: without(ROW, 'status') }, columns), { primaryKey: ['id'] }));
    expect(error.reason).toBe('column-missing');
    expect(error.mapping).toBe('active');
    expect(error.message).toContain('mapping active: column "status" (used at when.eq[0]) of crm.contacts is not in its changes');
    expect(error.message).not.toContain('Ada');
    expect(error.message).not.toContain('t1');
    // The same change without the relation's columns (built by hand): the `when` is unknown, nothing is emitted.
    expect(evaluateChange(ACTIVE, change({ operation: 'insert', new: without(ROW, 'status') }, undefined))).toBeUndefined();
  });

  it('names a renamed tenant column as missing, not as a tenant the row lacks', () => {
    const columns = ['id', 'tenant', 'status', 'name', 'deleted_at'];
    const row = { id: 7, tenant: 't1', status: 'active', name: 'Ada', deleted_at: null };
    const error = unroutable(() => evaluateChange(mapping({ tenantColumn: 'tenant_id' }), change({ operation: 'insert', new: row }, columns)));
    expect(error.reason).toBe('column-missing');
    expect(error.message).toContain('column "tenant_id" (used at tenantColumn)');
  });

  it('names a renamed primary key column as missing when the mapping sets no key', () => {
    const columns = ['contact_id', 'tenant_id', 'status', 'name', 'deleted_at'];
    const row = { contact_id: 7, tenant_id: 't1', status: 'active', name: 'Ada', deleted_at: null };
    const error = unroutable(() => evaluateChange(mapping(), change({ operation: 'insert', keyColumns: ['contact_id'], new: row }, columns), { primaryKey: ['id'] }));
    expect(error.reason).toBe('column-missing');
    expect(error.message).toContain('column "id" (used at the primary key)');
  });

  it('lists every missing column of the change at once', () => {
    const m = mapping({ tenantColumn: 'tenant_id', key: ['id'], when: { and: [{ changed: 'status' }, { eq: ['$old.name', 'Ada'] }] } });
    const error = unroutable(() => evaluateChange(m, change({ operation: 'insert', new: { id: 7 } }, ['id'])));
    expect(error.message).toContain('columns "tenant_id" (used at tenantColumn), "status" (used at when.and[0].changed), "name" (used at when.and[1].eq[0]) of crm.contacts are not');
  });

  it('publishes the mapping topic event of a change whose payload alone reads a missing column, the field left out, nothing unroutable', () => {
    const columns = altered('name');
    const row = without(ROW, 'name');
    const m = mapping({ tenantColumn: 'tenant_id', payload: { who: '$row.name', status: '$row.status' } });
    const evaluated = evaluateChange(m, change({ operation: 'insert', new: row }, columns), { primaryKey: ['id'] });
    expect(evaluated).toMatchObject({ topic: 'crm.contacts', entityKey: '7', tenant: 't1', operation: 'CREATED', record: row });
    expect(evaluated?.payload).toEqual({ status: 'active' });
    expect(evaluated && 'topicProblem' in evaluated).toBe(false);
  });

  it('loses the topic event of a change whose topic placeholder reads a missing column as a placeholder without a value, not as drift', () => {
    const m = mapping({ tenantColumn: 'tenant_id', topic: 'crm.contacts.{$row.name}' });
    const evaluated = evaluateChange(m, change({ operation: 'insert', new: without(ROW, 'name') }, altered('name')), { primaryKey: ['id'] });
    expect(evaluated).toMatchObject({ topic: undefined, entityKey: '7', tenant: 't1', operation: 'CREATED' });
    expect(evaluated && 'topicProblem' in evaluated && evaluated.topicProblem).toMatchObject({ reason: 'topic-value-invalid', mapping: 'contacts' });
  });

  it('counts only changes the mapping would announce: not an operation it does not map', () => {
    const inserts = mapping({ events: ['insert'], when: { eq: ['$row.status', 'active'] } });
    const columns = altered('status');
    expect(evaluateChange(inserts, change({ operation: 'delete', old: { id: 7 } }, columns))).toBeUndefined();
    expect(evaluateChange(inserts, change({ operation: 'update', new: without(ROW, 'status') }, columns))).toBeUndefined();
    expect(unroutable(() => evaluateChange(inserts, change({ operation: 'insert', new: without(ROW, 'status') }, columns))).reason).toBe('column-missing');
  });

  it('makes an update unroutable when the soft-delete column is gone, even for a mapping of soft deletes only', () => {
    const deletes = mapping({ events: ['delete'], softDeleteColumn: 'deleted_at' });
    const columns = altered('deleted_at');
    const row = without(ROW, 'deleted_at');
    const error = unroutable(() => evaluateChange(deletes, change({ operation: 'update', new: row, old: row }, columns)));
    expect(error.message).toContain('column "deleted_at" (used at softDeleteColumn)');
    // An insert it never announces.
    expect(evaluateChange(deletes, change({ operation: 'insert', new: row }, columns))).toBeUndefined();
  });

  it('takes neither an unchanged TOASTed value, nor a delete’s key-only old row, nor a generated column for a dropped one', () => {
    const m = mapping({ tenantColumn: 'tenant_id', events: ['update', 'delete'], when: { eq: ['$row.name', 'Ada'] }, payload: { status: '$row.status' } });
    // `name` TOASTed and unchanged: not sent, still a column of the table; the `when` is unknown.
    const toasted = change({ operation: 'update', new: without(ROW, 'name'), unchangedToastColumns: ['name'] });
    expect(evaluateChange(m, toasted, { primaryKey: ['id'] })).toBeUndefined();
    // A delete carries the key only (no REPLICA IDENTITY FULL): the tenant is unavailable, not missing.
    const deleted = unroutable(() => evaluateChange(mapping({ tenantColumn: 'tenant_id', events: ['delete'] }), change({ operation: 'delete', old: { id: 7 } }), { primaryKey: ['id'] }));
    expect(deleted.reason).toBe('tenant-unavailable');
    // A generated column is never sent (before Postgres 18): its absence is no drift.
    const generated = mapping({ tenantColumn: 'tenant_id', payload: { label: '$row.label' } });
    const evaluated = evaluateChange(generated, change({ operation: 'insert', new: ROW }), { primaryKey: ['id'], generatedColumns: ['label'] });
    expect(evaluated).toMatchObject({ topic: 'crm.contacts' });
    expect(evaluated?.payload).toEqual({});
  });

  it('works a relation and mapping out once, its error built once, and again for a new relation description', () => {
    const m = mapping({ when: { eq: ['$row.status', 'active'] } });
    const context = { primaryKey: ['id'] };
    const before = columnDrift(m, COLUMNS, context);
    expect(before.routing).toBeUndefined();
    const columns = altered('status');
    const drift = columnDrift(m, columns, context);
    expect(drift.routing).toBeDefined();
    expect(columnDrift(m, columns, context)).toBe(drift);
    expect(columnDrift(m, undefined, context).routing).toBeUndefined();
    const first = unroutable(() => evaluateChange(m, change({ operation: 'insert', new: without(ROW, 'status') }, columns), context));
    const second = unroutable(() => evaluateChange(m, change({ operation: 'insert', new: { ...without(ROW, 'status'), id: 8 } }, columns), context));
    expect(second).toBe(first);
  });
});

describe('the log of changes a drifted relation leaves unroutable', () => {
  type Line = { level: number; msg: string; mapping?: string; reason?: string; unlogged?: number; err?: { message: string } };

  function drifted() {
    const lines: Line[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Line) } });
    const metrics = createMetrics({ processMetrics: false });
    const noted: string[] = [];
    let now = 0;
    const m = mapping({ tenantColumn: 'tenant_id', when: { eq: ['$row.status', 'active'] } });
    const binding: MappedBinding = { scope: { app: 'shop', env: 'prod' }, mappings: [m], tables: new Map([['crm.contacts', { primaryKey: ['id'] }]]) };
    const columns = altered('status');
    const options = { logger, metrics, now: () => now, onUnroutable: (error: UnroutableRowError) => void noted.push(error.reason) };
    const apply = (count: number) => {
      for (let i = 0; i < count; i++) {
        const rowChange = change({ operation: 'insert', new: { ...without(ROW, 'status'), id: i } }, columns);
        const events = bindingEvents(binding, { source: 's', change: rowChange, transaction: { source: 's', xid: 1, commitLsn: '0/1' }, lastUpdatedAt: '2026-01-01T00:00:00Z' }, options);
        expect(events).toEqual([]);
      }
    };
    const counted = async () => (await metrics.cdcUnroutable.get()).values[0]?.value ?? 0;
    const warns = () => lines.filter((line) => line.level === 40);
    return { lines, noted, apply, counted, warns, advance: (ms: number) => void (now += ms) };
  }

  it('warns once for many changes of the relation and mapping, the rest at debug, while counting every change', async () => {
    const log = drifted();
    log.apply(1_000);
    expect(log.warns()).toHaveLength(1);
    expect(log.warns()[0]).toMatchObject({ msg: 'row change not routed', mapping: 'contacts', reason: 'column-missing' });
    expect(log.warns()[0]?.err?.message).toContain('column "status" (used at when.eq[0])');
    expect(log.lines.filter((line) => line.level === 20)).toHaveLength(999);
    expect(log.noted).toHaveLength(1_000);
    expect(await log.counted()).toBe(1_000);
  });

  it('warns again a minute later, saying how many changes it did not log at warn since', async () => {
    const log = drifted();
    log.apply(10);
    log.advance(59_999);
    log.apply(5);
    expect(log.warns()).toHaveLength(1);
    log.advance(1);
    log.apply(3);
    expect(log.warns()).toHaveLength(2);
    expect(log.warns()[1]).toMatchObject({ reason: 'column-missing', unlogged: 14 });
    expect(await log.counted()).toBe(18);
  });
});

describe('the relation a decoded change carries', () => {
  const relationOf = (names: readonly string[]): Pgoutput.MessageRelation => ({
    tag: 'relation',
    relationOid: 1,
    schema: 'crm',
    name: 'contacts',
    replicaIdentity: 'default',
    columns: names.map((name) => ({ name, flags: name === 'id' ? 1 : 0, typeOid: 25, typeMod: -1, typeSchema: null, typeName: null, parser: columnParser(25) })),
    keyColumns: ['id'],
  });

  it('lists every column of the relation, those an image lacks too, as one array per relation, not enumerable', () => {
    const relation = relationOf(['id', 'tenant_id', 'notes']);
    const first = toRowChange({ tag: 'update', relation, new: { id: '1', tenant_id: 'a', notes: undefined }, old: null, key: null }, '00000000/00001000', 0);
    const second = toRowChange({ tag: 'delete', relation, old: null, key: { id: '1' } }, '00000000/00002000', 0);
    expect(first.relationColumns).toEqual(['id', 'tenant_id', 'notes']);
    expect(first.unchangedToastColumns).toEqual(['notes']);
    expect(second.relationColumns).toBe(first.relationColumns);
    expect(Object.keys(first)).not.toContain('relationColumns');
    // Described again after an ALTER TABLE: a new relation object, a new list.
    const redescribed = toRowChange({ tag: 'insert', relation: relationOf(['id', 'tenant']), new: { id: '2', tenant: 'a' } }, '00000000/00003000', 0);
    expect(redescribed.relationColumns).toEqual(['id', 'tenant']);
    const error = unroutable(() => evaluateChange(mapping({ tenantColumn: 'tenant_id' }), redescribed));
    expect(error.reason).toBe('column-missing');
  });

  it('publishes a change committed before a column was added under a mapping saved since whose payload reads it; one whose `when` reads it is column-missing', () => {
    // A lagging reader, a replay: the change carries the relation as it was before `ADD COLUMN region`.
    const before = toRowChange({ tag: 'insert', relation: relationOf(['id', 'tenant_id', 'name']), new: { id: '1', tenant_id: 't1', name: 'Ada' } }, '00000000/00001000', 0);
    const payload = mapping({ tenantColumn: 'tenant_id', payload: { name: '$row.name', region: '$row.region' } });
    const evaluated = evaluateChange(payload, before, { primaryKey: ['id'] });
    expect(evaluated).toMatchObject({ topic: 'crm.contacts', tenant: 't1', payload: { name: 'Ada' } });
    expect(evaluated?.payload).not.toHaveProperty('region');
    const when = mapping({ tenantColumn: 'tenant_id', when: { eq: ['$row.region', 'eu'] } });
    const error = unroutable(() => evaluateChange(when, before, { primaryKey: ['id'] }));
    expect(error.reason).toBe('column-missing');
    expect(error.message).toContain('or the change was committed before the column was added');
  });
});
