/**
 * One outbox row → its event or its dead reason (`outbox/outbox-row.ts`), the rules both modes
 * share: here the tenant and entity a token or `publish` could never have, and the creation time
 * event ids are derived from.
 */
import { describe, expect, it } from 'vitest';
import { createdMillis, outboxRowEvent, type OutboxRow } from '../../src/pipeline/outbox/outbox-row.ts';

const rules = { outboxId: 'db1/public.event_outbox', scope: { app: 'shop', env: 'prod' }, maxPayloadBytes: 1_000, requireTenant: false };
const row: OutboxRow = {
  id: '7',
  created_ms: '1711848600123',
  topic: 'orders',
  event_type: 'order.created',
  payload: {},
  tenant: 'acme',
  entity: 'order:7',
  table_name: null,
  operation: null,
};

describe('an outbox row', () => {
  it('is set aside as dead when its tenant or entity holds a control character, as publish refuses such an entity', () => {
    expect(outboxRowEvent({ ...row, tenant: 'acme\u0007' }, rules)).toBe('tenant holds a control character');
    expect(outboxRowEvent({ ...row, tenant: 'ac\nme' }, rules)).toBe('tenant holds a control character');
    expect(outboxRowEvent({ ...row, entity: 'order:\u00007' }, rules)).toBe('entity holds a control character');
    expect(outboxRowEvent({ ...row, entity: 'order:7\u009f' }, rules)).toBe('entity holds a control character');
    // Other Unicode is a name like any other.
    expect(outboxRowEvent({ ...row, tenant: 'åcme 東京', entity: 'order:7 ✓' }, rules)).toMatchObject({ entity: 'order:7 ✓' });
  });

  it('reads created_at from the WAL’s decoded image as epoch milliseconds, whichever its column type, and none for infinity or NULL', () => {
    // A timestamptz as its instant, a timestamp as its wall clock read as UTC (`cdc/row-values.ts`).
    expect(createdMillis('2024-03-31T01:30:00.123Z')).toBe('1711848600123');
    expect(createdMillis('1969-12-31T23:59:59.500Z')).toBe('-500');
    expect(createdMillis('infinity')).toBeNull();
    expect(createdMillis(null)).toBeNull();
  });
});
