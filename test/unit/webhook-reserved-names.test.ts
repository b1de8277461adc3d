/**
 * Tributary's webhook names are its own: the topics `webhooks.endpoints` (endpoint notices) and
 * `webhooks.test`, and the type `webhook.test` (what `sendTestWebhook` sends) — by name, not as
 * namespaces, so the mappings and outbox rows applications already route under `webhooks.` (a model
 * `webhooks.contacts`) and the types of a model `webhook` (`webhook.created`) stay theirs. No outbox
 * row or CDC mapping may route onto the reserved ones (they refuse through the same functions as
 * `publish`), and an application's `webhook.test` elsewhere is not taken for Tributary's.
 */
import { describe, expect, it } from 'vitest';
import { systemTopicProblems } from '../../src/pipeline/cdc/mapping/mapping-topics.ts';
import { isOwnEventType, isReservedTopic, isSystemEventType, isSystemTopic } from '../../src/pipeline/events/system-topics.ts';
import { outboxRowEvent, type OutboxRow } from '../../src/pipeline/outbox/outbox-row.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

const RULES = { outboxId: 'outbox-1', scope: { app: 'app', env: 'env' }, maxPayloadBytes: 65_536, requireTenant: false };
const row = (topic: string, type: string): OutboxRow => ({ id: '1', topic, event_type: type, payload: {}, tenant: null, entity: null, table_name: null, operation: null });

describe('webhook names', () => {
  it('reserves webhooks.test, webhooks.endpoints and the type webhook.test, by name', () => {
    for (const topic of ['webhooks.test', 'webhooks.endpoints']) {
      expect(isSystemTopic(topic), topic).toBe(true);
      expect(isReservedTopic(topic), topic).toBe(true);
    }
    expect(isSystemEventType('webhook.test')).toBe(true);
    // Names that only look alike, or an application's own under the same first segment, stay the application's.
    for (const topic of ['webhooks', 'webhook.test', 'mywebhooks.test', 'webhooks.contacts', 'webhooks.test.more']) expect(isSystemTopic(topic), topic).toBe(false);
    for (const type of ['webhooks.test', 'webhook', 'app.webhook.test', 'webhook.created', 'webhook.testing']) expect(isSystemEventType(type), type).toBe(false);
  });

  it('takes a webhook.test for Tributary’s only on its topic', () => {
    expect(isOwnEventType({ topic: 'webhooks.test', type: 'webhook.test' })).toBe(true);
    expect(isOwnEventType({ topic: 'orders', type: 'webhook.test' })).toBe(false);
  });

  it('refuses an outbox row or a CDC mapping that would route onto a reserved topic, and keeps the rest of webhooks.* open', () => {
    expect(outboxRowEvent(row('webhooks.test', 'webhook.test'), RULES)).toBe("topic is one of Tributary's own");
    expect(outboxRowEvent(row('webhooks.endpoints', 'order.created'), RULES)).toBe("topic is one of Tributary's own");
    expect(typeof outboxRowEvent(row('webhooks.anything', 'order.created'), RULES)).toBe('object');
    expect(systemTopicProblems(mapping({ topic: 'webhooks.test' }))).toHaveLength(1);
    expect(systemTopicProblems(mapping({ topic: 'webhooks.{$row.status}' }))).toEqual([]);
    expect(systemTopicProblems(mapping({ module: 'webhooks', model: 'contacts', topic: 'crm.contact-events' }))).toEqual([]);
  });
});
