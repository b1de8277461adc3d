/**
 * The gateway emitter as a unit, over a real router and in-memory log: it routes only what an
 * endpoint selects, holds at most `maxInFlight` routes (the rest dropped, logged once and
 * counted), and a failed route is logged and counted without reaching the caller. The router's
 * `afterPlaced` hook (where the webhook tap stores deliveries) is where the test holds routes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { GatewayEventInput } from '../../src/pipeline/events/gateway-event.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import type { SelectingEndpoint } from '../../src/pipeline/webhooks/endpoint-selection.ts';
import { createGatewayEmitter } from '../../src/pipeline/webhooks/gateway-emitter.ts';
import { deferred, waitFor, type Deferred } from '../helpers/wait-for.ts';

const scope = { app: 'shop', env: 'prod', tenant: 'a' };

function endpoint(events: readonly string[], overrides: Partial<SelectingEndpoint> = {}): SelectingEndpoint {
  return { id: 'ep1', app: 'shop', env: 'prod', tenant: null, events, enabled: true, ...overrides };
}

function connected(connectionId: string): GatewayEventInput {
  return { scope, connectionId, subject: 'u1', event: { type: 'gateway.connected' } };
}

const logs: EventLog[] = [];
afterEach(async () => {
  for (const log of logs.splice(0)) await log.close();
});

/** An emitter over a real router; `afterPlaced` (when set) runs in each route, where a test can hold or fail it. */
function setup(endpoints: readonly SelectingEndpoint[], options: { maxInFlight?: number; closeTimeoutMs?: number; afterPlaced?: () => Promise<void> } = {}) {
  const placed: RealtimeEvent[] = [];
  const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
  const metrics = createMetrics({ processMetrics: false });
  const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 60_000 }, publish: () => undefined });
  logs.push(log);
  const router = createEventRouter({
    log,
    logger: createLogger({ level: 'silent' }),
    afterPlaced: async (events) => {
      await options.afterPlaced?.();
      placed.push(...events);
    },
  });
  const emitter = createGatewayEmitter({
    router,
    endpoints: { inScope: (app, env) => endpoints.filter((endpoint) => endpoint.app === app && endpoint.env === env) },
    logger: createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) } }),
    metrics,
    ...(options.maxInFlight !== undefined && { maxInFlight: options.maxInFlight }),
    ...(options.closeTimeoutMs !== undefined && { closeTimeoutMs: options.closeTimeoutMs }),
  });
  const lost = async (reason: string) => (await metrics.gatewayEventsLost.get()).values.find((value) => value.labels['reason'] === reason)?.value ?? 0;
  return { emitter, placed, lines, lost };
}

describe('gateway emitter', () => {
  it('routes a gateway event only when an endpoint of its scope selects it', async () => {
    const unselected = [
      [],
      [endpoint(['orders.*'])],
      [endpoint(['gateway.*'], { app: 'other' })],
      [endpoint(['gateway.*'], { tenant: 'b' })],
      [endpoint(['gateway.disconnected'])],
    ];
    for (const endpoints of unselected) {
      const { emitter, placed } = setup(endpoints);
      emitter.emit(connected('c1'));
      await emitter.close();
      expect(placed, JSON.stringify(endpoints)).toEqual([]);
    }

    // Disabled endpoints count: their deliveries wait for them to be enabled again.
    for (const events of [['gateway.*'], ['gateway.connected'], ['*']]) {
      const { emitter, placed } = setup([endpoint(events, { tenant: 'a', enabled: false })]);
      emitter.emit(connected('c1'));
      await emitter.close();
      expect(placed.map((event) => [event.type, event.topic, event.metadata.entity, event.payload])).toEqual([
        ['gateway.connected', 'gateway.connected', 'c1', { connectionId: 'c1', subject: 'u1' }],
      ]);
    }
  });

  it('holds at most maxInFlight routes: the rest are dropped, logged once and counted, and routing resumes', async () => {
    const gates: Deferred<void>[] = [];
    const { emitter, placed, lines, lost } = setup([endpoint(['gateway.*'])], {
      maxInFlight: 2,
      afterPlaced: () => {
        const gate = deferred();
        gates.push(gate);
        return gate.promise;
      },
    });
    for (const id of ['c1', 'c2', 'c3', 'c4']) emitter.emit(connected(id));
    await waitFor(() => gates.length === 2, { message: 'two routes reached afterPlaced' });
    expect(await lost('overflow')).toBe(2);
    expect(lines.filter((line) => line.msg.includes('dropped'))).toHaveLength(1);

    for (const gate of gates) gate.resolve();
    await waitFor(() => placed.length === 2, { message: 'the two routes in flight finished' });
    emitter.emit(connected('c5'));
    await waitFor(() => gates.length === 3, { message: 'a route started again' });
    gates[2]!.resolve();
    await emitter.close();
    expect(placed.map((event) => event.metadata.entity)).toEqual(['c1', 'c2', 'c5']);
    expect(lines.find((line) => line.msg.includes('routed again'))).toMatchObject({ dropped: 2 });
    expect(await lost('overflow')).toBe(2);
  });

  it('logs and counts a route that fails, and never throws to the caller', async () => {
    const { emitter, placed, lines, lost } = setup([endpoint(['gateway.*'])], {
      afterPlaced: () => Promise.reject(new Error('deliveries could not be stored')),
    });
    expect(() => emitter.emit(connected('c1'))).not.toThrow();
    await emitter.close();
    expect(placed).toEqual([]);
    expect(await lost('failed')).toBe(1);
    expect(lines.find((line) => line.msg === 'gateway event could not be routed')).toMatchObject({ level: 40, type: 'gateway.connected' });
  });

  it('stops waiting at close for a route that is stuck, and says so', async () => {
    const stuck = deferred();
    const { emitter, lines } = setup([endpoint(['gateway.*'])], { closeTimeoutMs: 20, afterPlaced: () => stuck.promise });
    emitter.emit(connected('c1'));
    await emitter.close();
    expect(lines.find((line) => line.msg.includes('still routing at shutdown'))).toMatchObject({ level: 40, abandoned: 1 });
    stuck.resolve();
  });

  it('routes nothing once closed', async () => {
    const { emitter, placed } = setup([endpoint(['gateway.*'])]);
    await emitter.close();
    emitter.emit(connected('c1'));
    await emitter.close();
    expect(placed).toEqual([]);
  });
});
