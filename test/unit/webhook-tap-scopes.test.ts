/**
 * The routing tap and the gateway emitter check an event against its own app/env's endpoints
 * only (the endpoint cache indexes them by scope): the endpoints of every other environment are
 * never looked at, however many there are. Each endpoint here counts the reads of its fields.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { GatewayEventInput } from '../../src/pipeline/events/gateway-event.ts';
import { endpointScopes } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import type { SigningEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { createGatewayEmitter } from '../../src/pipeline/webhooks/gateway-emitter.ts';
import { createWebhookTap } from '../../src/pipeline/webhooks/webhook-tap.ts';

const logger = createLogger({ level: 'silent' });

/** An endpoint of `env` selecting nothing the test sends; `reads` counts every read of its fields. */
function endpointOf(index: number, env: string, reads: { count: number }): SigningEndpoint {
  const endpoint: SigningEndpoint = {
    id: `ep_${index}`, app: 'app', env, tenant: null, url: 'https://receiver.example/hook', description: '',
    events: ['orders.*'], enabled: true, disabledReason: null, rateLimitPerSecond: null, maxConcurrency: 10,
    failingSince: null, lastSuccessAt: null, backlogFullSince: null, previousSecretExpiresAt: null,
    createdAt: new Date(), updatedAt: new Date(), secrets: ['whsec_AAAA'],
  };
  return new Proxy(endpoint, {
    get(target, key, receiver) {
      reads.count += 1;
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
}

const event = (id: string): RealtimeEvent => ({
  id, topic: 'payments', source: 'system', type: 'payment.settled', payload: {},
  metadata: { timestamp: Date.now(), scope: { app: 'app', env: 'env-0', tenant: undefined } },
  cursor: '0-1',
});

function endpointsIn(reads: { own: { count: number }; others: { count: number } }): SigningEndpoint[] {
  return [
    ...Array.from({ length: 3 }, (_, index) => endpointOf(index, 'env-0', reads.own)),
    ...Array.from({ length: 300 }, (_, index) => endpointOf(3 + index, `env-${1 + (index % 3)}`, reads.others)),
  ];
}

describe('routing an event to webhook endpoints', () => {
  it('looks at the endpoints of the event’s own environment only', async () => {
    const reads = { own: { count: 0 }, others: { count: 0 } };
    const all = endpointsIn(reads);
    const scopes = endpointScopes(all);
    const cache = {
      current: () => all,
      inScope: (app: string, env: string) => scopes.inScope(app, env),
      byId: () => undefined,
      fresh: () => Promise.resolve(undefined),
      refresh: () => Promise.resolve(),
      changed: () => Promise.resolve(),
      close: () => {},
    };
    // Nothing selects the events: the tap stores nothing, and needs no database.
    const tap = createWebhookTap({ db: {} as never, endpoints: cache, scheduler: {} as never, statistics: {} as never, logger, maxBodyBytes: 65_536 });
    reads.own.count = 0;
    reads.others.count = 0;
    await tap.deliver([event('e-1'), event('e-2')]);
    expect(reads.own.count).toBeGreaterThan(0);
    expect(reads.others.count).toBe(0);
  });

  it('looks at the gateway event’s own environment only', () => {
    const reads = { own: { count: 0 }, others: { count: 0 } };
    const all = endpointsIn(reads);
    const scopes = endpointScopes(all);
    const emitter = createGatewayEmitter({ router: { route: () => Promise.reject(new Error('selected by no endpoint: never routed')) }, endpoints: scopes, logger });
    reads.own.count = 0;
    reads.others.count = 0;
    emitter.emit({ scope: { app: 'app', env: 'env-0', tenant: undefined }, connectionId: 'c-1', subject: 'user-1', event: { type: 'gateway.connected' } } satisfies GatewayEventInput);
    expect(reads.own.count).toBeGreaterThan(0);
    expect(reads.others.count).toBe(0);
  });

  it('indexes the endpoints by app and env, in the order they were loaded', () => {
    const reads = { own: { count: 0 }, others: { count: 0 } };
    const all = endpointsIn(reads);
    const scopes = endpointScopes(all);
    expect(scopes.inScope('app', 'env-0').map((endpoint) => endpoint.id)).toEqual(['ep_0', 'ep_1', 'ep_2']);
    expect(scopes.inScope('app', 'env-1')).toHaveLength(100);
    expect(scopes.inScope('other-app', 'env-0')).toEqual([]);
  });
});
