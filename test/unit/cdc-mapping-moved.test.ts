/**
 * Rows an update moves to another entity key or tenant (`MappedEvent.former`), and the events a
 * mapped change becomes (`mappedChangeEvents`): a DELETED where the row was, then the row where it
 * now is, under ids derived from the change's LSN (and its index at it, for a multi-insert's rows).
 */
import { describe, expect, it } from 'vitest';
import { stableEventId } from '../../src/pipeline/events/event-id.ts';
import { changeEventId, mappedChangeEvents } from '../../src/pipeline/cdc/mapping/mapped-events.ts';
import { evaluateMapping, type MappedEvent } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import type { RowChange, RowImage } from '../../src/pipeline/cdc/row-change.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

const ROW = { id: 7, tenant_id: 't1', status: 'active', name: 'Ada' };
const TENANTED = mapping({ tenantColumn: 'tenant_id' });

function update(row: RowImage, old: RowImage | undefined, keyColumns: readonly string[] = ['id']): RowChange {
  return { operation: 'update', table: { schema: 'crm', name: 'contacts' }, keyColumns, new: row, old, unchangedToastColumns: [], lsn: '00000000/016B3748', lsnIndex: 0 };
}

function evaluate(change: RowChange, m = TENANTED, primaryKey: readonly string[] = ['id']): MappedEvent {
  const event = evaluateMapping(m, change, { primaryKey });
  if (!event) throw new Error('expected an event');
  return event;
}

describe('evaluateMapping: rows moved by an update', () => {
  it('names the old key of a key change (the key-only old row Postgres sends without REPLICA IDENTITY FULL), the tenant taken as unchanged', () => {
    const event = evaluate(update({ ...ROW, id: 8 }, { id: 7 }));
    expect(event).toMatchObject({ entityKey: '8', tenant: 't1', operation: 'CREATED', action: 'update', type: 'contacts.updated' });
    expect(event.former).toEqual({ entityKey: '7', tenant: 't1', type: 'contacts.deleted', record: { id: 7 } });
  });

  it('names the old tenant of a tenant change when the old row has it (REPLICA IDENTITY FULL)', () => {
    const event = evaluate(update({ ...ROW, tenant_id: 't2' }, ROW, Object.keys(ROW)));
    expect(event).toMatchObject({ entityKey: '7', tenant: 't2', operation: 'CREATED' });
    expect(event.former).toEqual({ entityKey: '7', tenant: 't1', type: 'contacts.deleted', record: ROW });
  });

  it('names the old tenant when the tenant is part of the key, without REPLICA IDENTITY FULL', () => {
    const event = evaluate(update({ ...ROW, tenant_id: 't2' }, { tenant_id: 't1', id: 7 }, ['tenant_id', 'id']), TENANTED, ['tenant_id', 'id']);
    expect(event).toMatchObject({ entityKey: 't2/7', tenant: 't2', operation: 'CREATED' });
    expect(event.former).toMatchObject({ entityKey: 't1/7', tenant: 't1' });
  });

  it('uses the mapping type for the deletion when the mapping sets one', () => {
    expect(evaluate(update({ ...ROW, id: 8 }, { id: 7 }), mapping({ tenantColumn: 'tenant_id', type: 'contact.changed' })).former?.type).toBe('contact.changed');
  });

  it('says nothing moved when key and tenant are unchanged, when Postgres sent no old row, or when the old row cannot tell', () => {
    const unchanged = evaluate(update({ ...ROW, status: 'lead' }, ROW, Object.keys(ROW)));
    expect(unchanged.former).toBeUndefined();
    expect(unchanged.operation).toBe('UPDATED');
    expect(evaluate(update({ ...ROW, status: 'lead' }, undefined)).former).toBeUndefined();
    // A mapping key the key-only old row does not hold.
    expect(evaluate(update({ ...ROW, id: 8 }, { id: 7 }), mapping({ tenantColumn: 'tenant_id', key: ['name'] })).former).toBeUndefined();
    // An old tenant no event could have been routed under.
    expect(evaluate(update(ROW, { ...ROW, tenant_id: null }, Object.keys(ROW))).former).toBeUndefined();
  });

  it('moves rows of a mapping without tenant column by their key only', () => {
    const event = evaluate(update({ ...ROW, id: 8 }, { id: 7 }), mapping());
    expect(event.former).toMatchObject({ entityKey: '7', tenant: undefined });
  });
});

describe('mappedChangeEvents', () => {
  const context = (change: RowChange) => ({
    source: 'src',
    scope: { app: 'shop', env: 'prod' },
    change,
    mapping: TENANTED,
    transaction: { source: 'src', xid: 9, commitLsn: '00000000/016B3800' },
    lastUpdatedAt: '2024-01-01T00:00:00.000Z',
  });

  it('deletes a moved row where it was before creating it where it is, each under an id of its own', () => {
    const change = update({ ...ROW, id: 8, tenant_id: 't2' }, ROW, Object.keys(ROW));
    const [gone, created, topical, ...rest] = mappedChangeEvents(context(change), evaluate(change));
    expect(rest).toEqual([]);
    expect(gone).toMatchObject({
      id: changeEventId('src', change, TENANTED, 'former'),
      topic: 'crm.contacts',
      scope: { app: 'shop', env: 'prod', tenant: 't1' },
      entity: 'crm.contacts/7',
      operation: 'delete',
      type: 'contacts.deleted',
      transaction: { xid: 9 },
      payload: { operation: 'DELETED', model: 'contacts', id: '7', record: ROW },
    });
    expect(created).toMatchObject({
      id: changeEventId('src', change, TENANTED),
      scope: { tenant: 't2' },
      entity: 'crm.contacts/8',
      operation: 'insert',
      payload: { operation: 'CREATED', id: '8', record: { ...ROW, id: 8, tenant_id: 't2' } },
    });
    // The mapping topic announces the update itself, once.
    expect(topical).toMatchObject({ id: created?.id, operation: 'update', type: 'contacts.updated', scope: { tenant: 't2' } });
    expect(gone?.id).not.toBe(created?.id);
  });

  it('keeps the id a change alone at its LSN had before (source, LSN, mapping), and gives the further rows of a multi-insert ids of their own, the same each time', () => {
    const first = update({ ...ROW, status: 'lead' }, undefined);
    // The id the previous version gave every change: a rolling upgrade receives it again under it.
    expect(changeEventId('src', first, TENANTED)).toBe(stableEventId('src', '00000000/016B3748', TENANTED.name));
    const second = { ...first, lsnIndex: 1 };
    const third = { ...first, lsnIndex: 2 };
    const ids = [first, second, third].map((change) => changeEventId('src', change, TENANTED));
    expect(new Set(ids).size).toBe(3);
    expect(changeEventId('src', { ...second }, TENANTED)).toBe(ids[1]);
    // The derived DELETED of a moved row is derived from its change's id, distinct from every row's.
    const formers = [first, second, third].map((change) => changeEventId('src', change, TENANTED, 'former'));
    expect(new Set([...ids, ...formers]).size).toBe(6);
    const events = mappedChangeEvents(context(second), evaluate(second));
    expect(events.map((event) => event.id)).toEqual([ids[1], ids[1]]);
    expect(events.map((event) => event.operation)).toEqual(['update', 'update']);
  });
});
