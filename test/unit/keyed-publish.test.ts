import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { RawEventInput, RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { publishOnce } from '../../src/pipeline/idempotency/keyed-publish.ts';
import { createMemoryPublishKeys } from '../../src/pipeline/idempotency/memory-publish-keys.ts';
import { keyId, requestFingerprint, type PublishKeys } from '../../src/pipeline/idempotency/publish-keys.ts';
import type { EventRouter, RouteHooks } from '../../src/pipeline/router/event-router.ts';

const scope = { app: 'shop', env: 'prod', tenant: 'a' };
const logger = createLogger({ level: 'silent' });

/** A router over an array: `failAppend` fails the next append, `failAfter` what follows the next placement. */
function fakeRouter() {
  const log: RealtimeEvent[] = [];
  const completed: RealtimeEvent[][] = [];
  const faults = { failAppend: false, failAfter: false };
  const router: EventRouter = {
    async route(input: RawEventInput, hooks?: RouteHooks) {
      if (faults.failAppend) {
        faults.failAppend = false;
        throw new Error('log away');
      }
      const event: RealtimeEvent = {
        id: input.id ?? `evt_random_${log.length}`,
        topic: input.topic,
        source: input.source,
        type: input.type,
        payload: input.payload,
        cursor: `c${log.length}`,
        metadata: { timestamp: log.length, scope: input.scope },
      };
      log.push(event);
      await hooks?.placed?.(event);
      if (faults.failAfter) {
        faults.failAfter = false;
        throw new Error('platform database away');
      }
      return event;
    },
    routeMany: () => Promise.reject(new Error('not used')),
    completePlaced(events) {
      completed.push([...events]);
      return Promise.resolve();
    },
  };
  return { router, log, completed, faults };
}

function keyed(payload: Record<string, unknown>, key = 'k1') {
  return {
    message: { source: 'socket' as const, topic: 'orders', type: 'message', scope, payload },
    keyId: keyId(scope, key),
    fingerprint: requestFingerprint('orders', 'message', payload),
  };
}

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('publishOnce', () => {
  it('places a key’s event once and answers every retry with it, payload included', async () => {
    const { router, log } = fakeRouter();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000 });
    const first = await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    const again = await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    expect(again).toEqual(first);
    expect(again.payload).toEqual({ n: 1 });
    expect(log).toHaveLength(1);
  });

  it('gives another request under a forgotten key another id, and the same request the same id', async () => {
    const time = clock();
    const { router, log } = fakeRouter();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000, now: time.now });
    const first = await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    time.advance(60_000);
    const other = await publishOnce({ router, keys, logger }, keyed({ n: 2 }));
    expect(other.id).not.toBe(first.id);
    time.advance(60_000);
    const same = await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    expect(same.id).toBe(first.id);
    expect(log).toHaveLength(3);
  });

  it('frees the key when the append failed, so the retry places the event', async () => {
    const { router, log, faults } = fakeRouter();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000 });
    faults.failAppend = true;
    await expect(publishOnce({ router, keys, logger }, keyed({ n: 1 }))).rejects.toThrow('log away');
    const event = await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    expect(log).toEqual([event]);
  });

  it('finishes what failed after the placement on the retry, without placing again', async () => {
    const { router, log, completed, faults } = fakeRouter();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000 });
    faults.failAfter = true;
    await expect(publishOnce({ router, keys, logger }, keyed({ n: 1 }))).rejects.toThrow('platform database away');
    const retry = await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    expect(log).toEqual([retry]);
    expect(completed).toEqual([[retry]]);
    // Done now: a later retry finishes nothing more.
    expect(await publishOnce({ router, keys, logger }, keyed({ n: 1 }))).toEqual(retry);
    expect(completed).toHaveLength(1);
  });

  it('refuses the key for another request, and while a try holds it', async () => {
    const { router } = fakeRouter();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000 });
    await publishOnce({ router, keys, logger }, keyed({ n: 1 }));
    await expect(publishOnce({ router, keys, logger }, keyed({ n: 2 }))).rejects.toMatchObject({ code: 'CONFLICT', details: { field: 'idempotencyKey' } });
    await keys.claim(keyId(scope, 'held'), requestFingerprint('orders', 'message', { n: 1 }), 'another-try');
    await expect(publishOnce({ router, keys, logger }, keyed({ n: 1 }, 'held'))).rejects.toMatchObject({ code: 'CONFLICT', details: { inFlight: true } });
  });

  it('answers the publish when its key cannot be remembered (the event is out)', async () => {
    const { router, log } = fakeRouter();
    const memory = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000 });
    const forgetful: PublishKeys = { ...memory, remember: () => Promise.reject(new Error('redis away')) };
    const event = await publishOnce({ router, keys: forgetful, logger }, keyed({ n: 1 }));
    expect(log).toEqual([event]);
  });
});
