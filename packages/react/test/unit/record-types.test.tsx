/** The hooks take the type of what they hold — `useRealtime`'s records (an `interface` too), `useDocument`'s data, `useEvents`' payloads — checked by `npm run typecheck`; without one, what they were. */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { TopicEvent } from '@tributary/client';
import { useDocument, useEvents, useRealtime, type UseDocumentResult, type UseEventsResult, type UseRealtimeOptions, type UseRealtimeResult } from '../../src/index.ts';

interface Contact {
  readonly id: number;
  readonly name: string;
}

describe('record types', () => {
  it('takes an interface as the record type of useRealtime', () => {
    const options: UseRealtimeOptions<Contact> = { onDeleted: (record) => expectTypeOf(record).toEqualTypeOf<Contact>() };
    const useContacts = () => useRealtime<Contact>('contacts', options);
    expectTypeOf(useContacts).returns.toEqualTypeOf<UseRealtimeResult<Contact>>();
    expect(typeof useContacts).toBe('function');
  });

  it('takes the data type of useDocument, `unknown` without one', () => {
    interface Board {
      readonly title: string;
    }
    const useBoard = () => useDocument<Board>('boards', 'b1');
    expectTypeOf(useBoard).returns.toEqualTypeOf<UseDocumentResult<Board>>();
    expectTypeOf<UseDocumentResult<Board>['data']>().toEqualTypeOf<Board | null | undefined>();
    expectTypeOf<UseDocumentResult['data']>().toEqualTypeOf<unknown>();
    expect(typeof useBoard).toBe('function');
  });

  it('takes the payload type of useEvents, for its events and onEvent, `unknown` without one', () => {
    interface OrderStatus {
      readonly orderId: number;
    }
    const useOrders = () => useEvents<OrderStatus>('orders.status', { onEvent: (event) => expectTypeOf(event.payload).toEqualTypeOf<OrderStatus>() });
    expectTypeOf(useOrders).returns.toEqualTypeOf<UseEventsResult<OrderStatus>>();
    expectTypeOf<UseEventsResult<OrderStatus>['lastEvent']>().toEqualTypeOf<TopicEvent<OrderStatus> | undefined>();
    expectTypeOf<UseEventsResult['events'][number]['payload']>().toEqualTypeOf<unknown>();
    expect(typeof useOrders).toBe('function');
  });
});
