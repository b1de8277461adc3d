import { describe, expect, it } from 'vitest';
import { assertEventSelection, isOwnLane, laneOf, selects } from '../../src/pipeline/webhooks/endpoint-selection.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';

const endpoint = (events: string[]) => ({ id: 'we_1', app: 'app', env: 'env', tenant: null, events, enabled: true });

describe('endpoint selection', () => {
  it('accepts every topic and type a publisher may use, with `.*` as the only wildcard', () => {
    for (const events of [['*'], ['orders'], ['orders.*'], ['order.created'], ['billing/invoices'], ['orders:eu'], ['billing/eu.*'], ['sync.notes.*', 'user_signed-up']]) {
      expect(() => assertEventSelection(events), events.join(',')).not.toThrow();
    }
    for (const events of [[], ['orders..x'], ['orders.'], ['.orders'], ['billing/*'], ['or ders'], ['orders.*.x'], ['x'.repeat(201)]]) {
      expect(() => assertEventSelection(events), events.join(',')).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }) as Error);
    }
  });

  it('selects such a topic by its name and by a pattern above it', () => {
    const event = (topic: string) => ({ topic, type: 'invoice.paid', metadata: { scope: { app: 'app', env: 'env', tenant: 't1' } } }) as Pick<RealtimeEvent, 'topic' | 'type' | 'metadata'>;
    expect(selects(endpoint(['billing/invoices']), event('billing/invoices'))).toBe(true);
    expect(selects(endpoint(['billing/eu.*']), event('billing/eu.invoices'))).toBe(true);
    expect(selects(endpoint(['billing/eu.*']), event('billing/us.invoices'))).toBe(false);
    expect(selects(endpoint(['orders:eu']), event('orders:us'))).toBe(false);
  });

  it("selects one of Tributary's own types (alert.fired) only on Tributary's event, not on an application's that took its name", () => {
    const event = (topic: string, type: string) => ({ topic, type, metadata: { scope: { app: 'app', env: 'env', tenant: 't1' } } }) as Pick<RealtimeEvent, 'topic' | 'type' | 'metadata'>;
    const pager = endpoint(['alert.fired', 'endpoint.*', 'sync.updated']);
    expect(selects(pager, event('system.alerts', 'alert.fired'))).toBe(true);
    expect(selects(pager, event('webhooks.endpoints', 'endpoint.disabled'))).toBe(true);
    expect(selects(pager, event('sync.notes.updated', 'sync.updated'))).toBe(true);
    // On an application's topic (a CDC mapping's type, an event published before types were checked).
    expect(selects(pager, event('orders', 'alert.fired'))).toBe(false);
    expect(selects(pager, event('orders', 'endpoint.disabled'))).toBe(false);
    expect(selects(pager, event('orders', 'sync.updated'))).toBe(false);
    // Selected by its topic, it is delivered as any event of that topic.
    expect(selects(endpoint(['orders']), event('orders', 'alert.fired'))).toBe(true);
    expect(selects(endpoint(['invoice.paid']), event('billing', 'invoice.paid'))).toBe(true);
  });
});

describe('delivery lanes', () => {
  const event = (tenant: string | undefined, entity: string | undefined, id = 'evt_1') => ({ id, metadata: { scope: { app: 'app', env: 'env', tenant }, entity } }) as Pick<RealtimeEvent, 'id' | 'metadata'>;

  it('are an entity within its tenant, as before for a plain tenant; an event without an entity has a lane of its own', () => {
    expect(laneOf(event('t1', 'order:7'))).toBe('t1|order:7');
    expect(laneOf(event(undefined, 'order:7'))).toBe('|order:7');
    expect(laneOf(event('t1', undefined, 'evt_9'))).toBe('event:evt_9');
    expect(isOwnLane(laneOf(event('t1', undefined)))).toBe(true);
  });

  it('never give two tenant–entity pairs one lane, nor an entity a lane taken for an event’s own', () => {
    const pairs: [string | undefined, string][] = [
      ['a', 'b|c'],
      ['a|b', 'c'],
      ['a\\', '|c'],
      ['a\\|', 'c'],
      [undefined, 'a|b|c'],
      ['', 'a|b|c'],
      ['event:x', 'y'],
      ['\\event:x', 'y'],
    ];
    const lanes = pairs.map(([tenant, entity]) => laneOf(event(tenant, entity)));
    // '' and no tenant are the same (an event without a tenant); every other pair has a lane of its own.
    expect(new Set(lanes).size).toBe(pairs.length - 1);
    expect(lanes.filter(isOwnLane)).toEqual([]);
  });
});
