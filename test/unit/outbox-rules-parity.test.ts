/**
 * The SDK's `enqueueOutboxEvent` checks an event before it writes it (packages/client/src/
 * outbox-rules.ts, its own copy of the rules: the SDK imports no server code); the server sets
 * aside the rows it cannot route (src/pipeline/outbox/outbox-row.ts). The two must agree: an event
 * the SDK refuses is one the server would set aside, and one it accepts is routed — at every limit.
 */
import { describe, expect, it } from 'vitest';
import { outboxRowEvent, type OutboxRules } from '../../src/pipeline/outbox/outbox-row.ts';
import { validateOutboxEvent, type OutboxEventFields } from '../../packages/client/src/outbox-rules.ts';

const rules: OutboxRules = { outboxId: 'ob_parity', scope: { app: 'app', env: 'env' }, maxPayloadBytes: 65_536, requireTenant: false };
const event: OutboxEventFields = { topic: 'orders.created', type: 'order.created', payload: { id: 1 } };
const nested = (depth: number): unknown => (depth === 1 ? {} : { a: nested(depth - 1) });
const sized = (bytes: number) => ({ s: 'x'.repeat(bytes - '{"s":""}'.length) });

const cases: readonly (readonly [string, OutboxEventFields])[] = [
  ['a plain event', event],
  ['a topic with a space', { ...event, topic: 'not a topic' }],
  ['a reserved topic', { ...event, topic: 'system.alerts' }],
  ['a sync topic', { ...event, topic: 'sync.notes.n1' }],
  ['a topic of 200 characters', { ...event, topic: 'a'.repeat(200) }],
  ['a topic of 201 characters', { ...event, topic: 'a'.repeat(201) }],
  ['an array payload', { ...event, payload: [1] }],
  ['a payload of the limit', { ...event, payload: sized(65_536) }],
  ['a payload a byte over', { ...event, payload: sized(65_537) }],
  ['a payload 100 levels deep', { ...event, payload: nested(100) }],
  ['a payload 101 levels deep', { ...event, payload: nested(101) }],
  ['a tenant of 200 characters', { ...event, tenant: 't'.repeat(200) }],
  ['a tenant of 201 characters', { ...event, tenant: 't'.repeat(201) }],
  ['a tenant with a control character', { ...event, tenant: 'tenant-a\u0001' }],
  ['an entity of 1,024 bytes', { ...event, entity: 'é'.repeat(512) }],
  ['an entity of 1,025 bytes', { ...event, entity: `${'é'.repeat(512)}x` }],
  ['an entity with a control character', { ...event, entity: 'order:1\n' }],
  ['an unknown operation', { ...event, operation: 'upsert' }],
];

describe('the SDK’s outbox rules and the server’s', () => {
  it.each(cases)('agree on %s', (_, fields) => {
    const sdk = (() => {
      try {
        validateOutboxEvent(fields);
        return 'accepted';
      } catch {
        return 'refused';
      }
    })();
    const row = {
      id: '1',
      created_ms: '0',
      topic: fields.topic,
      event_type: fields.type,
      payload: JSON.parse(JSON.stringify(fields.payload)) as unknown,
      tenant: fields.tenant ?? null,
      entity: fields.entity ?? null,
      table_name: fields.table ?? null,
      operation: fields.operation ?? null,
    };
    const server = typeof outboxRowEvent(row, rules) === 'string' ? 'refused' : 'accepted';
    expect(sdk).toBe(server);
  });
});
