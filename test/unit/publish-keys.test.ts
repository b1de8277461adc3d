import { describe, expect, it } from 'vitest';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryPublishKeys } from '../../src/pipeline/idempotency/memory-publish-keys.ts';
import { isValidKey, keyId, requestFingerprint } from '../../src/pipeline/idempotency/publish-keys.ts';

function eventOf(id: string, payload: Record<string, unknown> = {}): RealtimeEvent {
  return {
    id,
    topic: 'orders',
    source: 'socket',
    type: 'message',
    payload,
    cursor: `c-${id}`,
    metadata: { timestamp: 0, scope: { app: 'a', env: 'e', tenant: undefined } },
  };
}

function clock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('memory publish keys', () => {
  it('holds a key for one try, answers later tries with what it left, and frees it only for its own token', async () => {
    const time = clock();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000, now: time.now });
    expect(await keys.claim('k', 'f', 't1')).toEqual({ claimed: true });
    expect(await keys.claim('k', 'f', 't2')).toEqual({ claimed: false, record: { state: 'in-flight', fingerprint: 'f', token: 't1' } });
    await keys.release('k', 't2');
    expect((await keys.claim('k', 'f', 't3')).claimed).toBe(false);
    await keys.release('k', 't1');
    expect(await keys.claim('k', 'f', 't4')).toEqual({ claimed: true });

    const event = eventOf('evt_1');
    await keys.remember('k', { state: 'done', fingerprint: 'f', event });
    // A remembered event is not an in-flight try: releasing does not forget it.
    await keys.release('k', 't4');
    expect(await keys.claim('k', 'f', 't5')).toEqual({ claimed: false, record: { state: 'done', fingerprint: 'f', event } });
  });

  it('frees a try that died once its in-flight time ran out, and forgets an event after the lifetime', async () => {
    const time = clock();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000, now: time.now });
    await keys.claim('k', 'f', 't1');
    time.advance(4_999);
    expect((await keys.claim('k', 'f', 't2')).claimed).toBe(false);
    time.advance(1);
    expect(await keys.claim('k', 'f', 't2')).toEqual({ claimed: true });

    await keys.remember('k', { state: 'placed', fingerprint: 'f', event: eventOf('evt_2') });
    time.advance(59_999);
    expect((await keys.claim('k', 'f', 't3')).claimed).toBe(false);
    time.advance(1);
    expect(await keys.claim('k', 'f', 't3')).toEqual({ claimed: true });
  });

  it('forgets the oldest keys first beyond its bytes, never the one just written', async () => {
    const big = 'x'.repeat(1_000);
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000, maxBytes: 2_500 });
    for (const id of ['a', 'b', 'c']) await keys.remember(id, { state: 'done', fingerprint: 'f', event: eventOf(`evt_${id}`, { big }) });
    expect((await keys.claim('a', 'f', 't')).claimed).toBe(true);
    expect((await keys.claim('b', 'f', 't')).claimed).toBe(false);
    expect((await keys.claim('c', 'f', 't')).claimed).toBe(false);

    const keysSmall = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000, maxBytes: 10 });
    await keysSmall.remember('huge', { state: 'done', fingerprint: 'f', event: eventOf('evt_h', { big }) });
    expect((await keysSmall.claim('huge', 'f', 't')).claimed).toBe(false);
  });
});

describe('publish key names', () => {
  it('accepts 1–255 printable ASCII characters without spaces', () => {
    expect(isValidKey('0f8fad5b-d9cb-469f-a165-70867728950e')).toBe(true);
    expect(isValidKey('x'.repeat(255))).toBe(true);
    for (const bad of ['', 'x'.repeat(256), 'a b', 'tab\there', 'é']) expect(isValidKey(bad)).toBe(false);
  });

  it('gives two scopes, and two requests, different ids', () => {
    const a = keyId({ app: 'shop', env: 'prod', tenant: 'a' }, 'k');
    expect(keyId({ app: 'shop', env: 'prod', tenant: 'a' }, 'k')).toBe(a);
    expect(keyId({ app: 'shop', env: 'prod', tenant: 'b' }, 'k')).not.toBe(a);
    expect(keyId({ app: 'shop', env: 'prod', tenant: undefined }, 'k')).not.toBe(a);
    expect(requestFingerprint('orders', 'message', { n: 1 })).not.toBe(requestFingerprint('orders', 'message', { n: 2 }));
    expect(requestFingerprint('orders', 'message', { n: 1 })).not.toBe(requestFingerprint('orders', 'shipped', { n: 1 }));
  });
});
