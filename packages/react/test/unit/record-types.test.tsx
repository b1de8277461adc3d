/** `useRealtime` takes an `interface` as the record type (checked by `npm run typecheck`). */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { useRealtime, type UseRealtimeOptions, type UseRealtimeResult } from '../../src/index.ts';

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
});
