import { describe, expect, it } from 'vitest';
import { assertEventSelection, selects } from '../../src/pipeline/webhooks/endpoint-selection.ts';
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
});
