/**
 * Tributary's webhook names are its own: the `webhooks.*` topics (`webhooks.endpoints`,
 * `webhooks.test`) and the `webhook.` type namespace (`webhook.test`, what `sendTestWebhook`
 * sends) are reserved as `system.*`, `gateway.*` and `endpoint.` are — no outbox row or CDC mapping
 * may route there (they refuse through the same functions as `publish`), and an application's event
 * of such a type elsewhere is not taken for Tributary's by an endpoint selecting that type.
 */
import { describe, expect, it } from 'vitest';
import { systemTopicProblems } from '../../src/pipeline/cdc/mapping/mapping-topics.ts';
import { isOwnEventType, isReservedTopic, isSystemEventType, isSystemTopic } from '../../src/pipeline/events/system-topics.ts';
import { outboxRowEvent, type OutboxRow } from '../../src/pipeline/outbox/outbox-row.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

const RULES = { outboxId: 'outbox-1', scope: { app: 'app', env: 'env' }, maxPayloadBytes: 65_536, requireTenant: false };
const row = (topic: string, type: string): OutboxRow => ({ id: '1', topic, event_type: type, payload: {}, tenant: null, entity: null, table_name: null, operation: null });

describe('webhook names', () => {
  it('reserves every webhooks.* topic and the webhook. type namespace', () => {
    for (const topic of ['webhooks.test', 'webhooks.endpoints', 'webhooks.anything.later']) {
      expect(isSystemTopic(topic), topic).toBe(true);
      expect(isReservedTopic(topic), topic).toBe(true);
    }
    expect(isSystemEventType('webhook.test')).toBe(true);
    // Names that only look alike stay the application's.
    for (const topic of ['webhooks', 'webhook.test', 'mywebhooks.test']) expect(isSystemTopic(topic), topic).toBe(false);
    for (const type of ['webhooks.test', 'webhook', 'app.webhook.test']) expect(isSystemEventType(type), type).toBe(false);
  });

  it('takes a webhook.test for Tributary’s only on a webhooks.* topic', () => {
    expect(isOwnEventType({ topic: 'webhooks.test', type: 'webhook.test' })).toBe(true);
    expect(isOwnEventType({ topic: 'orders', type: 'webhook.test' })).toBe(false);
  });

  it('refuses an outbox row or a CDC mapping that would route onto a webhooks.* topic', () => {
    expect(outboxRowEvent(row('webhooks.test', 'webhook.test'), RULES)).toBe("topic is one of Tributary's own");
    expect(outboxRowEvent(row('webhooks.anything', 'order.created'), RULES)).toBe("topic is one of Tributary's own");
    expect(typeof outboxRowEvent(row('orders', 'order.created'), RULES)).toBe('object');
    expect(systemTopicProblems(mapping({ topic: 'webhooks.test' }))).toHaveLength(1);
    expect(systemTopicProblems(mapping({ topic: 'webhooks.{$row.status}' }))).toHaveLength(1);
    expect(systemTopicProblems(mapping({ module: 'webhooks', model: 'contacts', topic: 'crm.contact-events' }))[0]).toContain('module "webhooks"');
  });
});
