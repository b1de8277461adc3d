/**
 * Tributary's notices about webhook endpoints name the endpoint without its URL's secrets: their
 * subscribers may hold fewer rights than the endpoint's admins, and a webhook URL's path or query
 * is often a credential.
 */
import { describe, expect, it } from 'vitest';
import { aboutEndpoint, endpointBacklogFullEvent, endpointDisabledEvent, WEBHOOK_SYSTEM_TOPIC } from '../../src/pipeline/events/webhook-event.ts';

const scope = { app: 'app', env: 'env', tenant: 'acme' };
const url = 'https://bot:hunter2@hooks.example.com:8443/services/T0001/B0002/XXXXsecretXXXX?token=abc#frag';

describe('webhook endpoint notices', () => {
  it('endpoint.disabled names the endpoint and its URL’s origin, never its user, path or query', () => {
    const notice = endpointDisabledEvent({ scope, endpointId: 'ep_1', url, reason: 'the endpoint answered 410 Gone', disabledAt: new Date('2026-12-03T10:00:00Z') });
    expect(notice).toMatchObject({ topic: WEBHOOK_SYSTEM_TOPIC, type: 'endpoint.disabled', source: 'system', entity: 'endpoint:ep_1' });
    expect(notice.payload).toEqual({ endpointId: 'ep_1', origin: 'https://hooks.example.com:8443', reason: 'the endpoint answered 410 Gone' });
    expect(JSON.stringify(notice)).not.toMatch(/hunter2|secret|token|T0001/);
    expect(aboutEndpoint({ topic: notice.topic, source: 'system', payload: notice.payload })).toBe('ep_1');
  });

  it('endpoint.backlog_full does the same, with its counts', () => {
    const since = new Date('2026-12-03T10:00:00Z');
    const notice = endpointBacklogFullEvent({ scope, endpointId: 'ep_2', url, pending: 1_000_001, limit: 1_000_000, since });
    expect(notice.payload).toEqual({ endpointId: 'ep_2', origin: 'https://hooks.example.com:8443', pending: 1_000_001, limit: 1_000_000, since: since.toISOString() });
    expect(JSON.stringify(notice)).not.toMatch(/hunter2|secret|token|T0001/);
  });

  it('is told again with the same id, so a notice routed twice is one event to its endpoints', () => {
    const input = { scope, endpointId: 'ep_1', url, reason: 'r', disabledAt: new Date('2026-12-03T10:00:00Z') };
    expect(endpointDisabledEvent(input).id).toBe(endpointDisabledEvent({ ...input, url: 'https://other.example.com/' }).id);
  });
});
