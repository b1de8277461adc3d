/**
 * The record type parameter takes an `interface` (which has no implicit index signature) as well
 * as a `type` alias. Checked by the compiler (`npm run typecheck`); the run only shows the store
 * keeps such records.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { LiveModel, LiveModelOptions, ModelChange, ModelChangeEvent, ModelRecord, ModelSubscription, SubscribeModelOptions, TopicEvent, TributaryClient } from '@tributary/client';
import { subscribeModel } from '@tributary/client';
import { LiveModelStore } from '../../src/live-model-store.ts';

interface Contact {
  readonly id: number;
  readonly name: string;
}

describe('record types', () => {
  it('takes an interface as the record type of a live model and its store', () => {
    const store = new LiveModelStore<Contact>();
    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    store.apply({ eventId: 'e1', operation: 'UPDATED', id: '1', record: { id: 1, name: 'Ann B.' }, unchangedColumns: [], cursor: 'c1', lastUpdatedAt: '2026-01-01T00:00:01.000Z' });
    expectTypeOf(store.getSnapshot().records).toEqualTypeOf<readonly Contact[]>();
    expect(store.getSnapshot().records).toEqual([{ id: 1, name: 'Ann B.' }]);

    const options: LiveModelOptions<Contact> = { onCreated: (record) => expectTypeOf(record).toEqualTypeOf<Contact>() };
    const open = (client: TributaryClient) => client.liveModel<Contact>('contacts', options);
    expectTypeOf(open).returns.toEqualTypeOf<LiveModel<Contact>>();
  });

  it('takes a record type for subscribeModel, its record `ModelRecord` without one', () => {
    const options: SubscribeModelOptions<Contact> = {
      url: 'ws://127.0.0.1:1/graphql',
      token: 't',
      model: 'contacts',
      onChange: (change) => void expectTypeOf(change.record).toEqualTypeOf<Contact | null>(),
    };
    const open = () => subscribeModel<Contact>(options);
    expectTypeOf(open).returns.toEqualTypeOf<ModelSubscription>();
    expectTypeOf<ModelChangeEvent['record']>().toEqualTypeOf<ModelRecord | null>();
    expectTypeOf<Parameters<typeof subscribeModel<Contact>>[0]['onChange']>().parameter(0).toEqualTypeOf<ModelChangeEvent<Contact>>();
    expect(typeof open).toBe('function');
  });

  it('takes a payload type for a topic event, `unknown` without one', () => {
    expectTypeOf<TopicEvent<{ orderId: number }>['payload']>().toEqualTypeOf<{ orderId: number }>();
    expectTypeOf<TopicEvent['payload']>().toEqualTypeOf<unknown>();
    expectTypeOf<TopicEvent['cursor']>().toEqualTypeOf<string>();
  });

  it('types a filter from the record type: its columns, and clauses with an operator the server knows', () => {
    const open = (client: TributaryClient) => {
      client.liveModel<Contact>('contacts', { filter: { name: ['neq.', 'in.(Ann,"B, C")'], id: 'gte.10' } });
      client.liveModel<Contact>('contacts', { filter: { name: 'is.null' } });
      // @ts-expect-error a misspelt column
      client.liveModel<Contact>('contacts', { filter: { nmae: 'eq.Ann' } });
      // @ts-expect-error an operator the server does not know
      client.liveModel<Contact>('contacts', { filter: { name: 'like.Ann' } });
      // @ts-expect-error no operator
      client.liveModel<Contact>('contacts', { filter: { name: 'eq' } });
      // Untyped: any column, any text (a filter built at run time).
      const built: Record<string, string> = { status: 'eq.active' };
      client.liveModel('contacts', { filter: built });
    };
    expect(typeof open).toBe('function');
  });

  it('types a change by its operation: a record with CREATED and UPDATED, part of one with DELETED, none with LEFT', () => {
    const read = (change: ModelChange<Contact>) => {
      if (change.operation === 'CREATED' || change.operation === 'UPDATED') expectTypeOf(change.record).toEqualTypeOf<Contact>();
      else if (change.operation === 'DELETED') expectTypeOf(change.record).toEqualTypeOf<Partial<Contact>>();
      if (change.operation === 'LEFT') expectTypeOf(change.record).toBeNull();
    };
    expect(typeof read).toBe('function');
  });
});
