import { describe, expect, it } from 'vitest';
import { createMemoryPublishKeys } from '../../src/pipeline/idempotency/memory-publish-keys.ts';
import { isValidKey, keyId, requestFingerprint, type RememberedEvent } from '../../src/pipeline/idempotency/publish-keys.ts';

function eventOf(id: string): RememberedEvent {
  return { id, topic: 'orders', source: 'socket', type: 'message', cursor: `c-${id}`, metadata: { timestamp: 0, scope: { app: 'a', env: 'e', tenant: 't' } } };
}

function clock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('memory publish keys', () => {
  it('holds a key for one try, answers later tries with what it left, and frees it only for that try', async () => {
    const time = clock();
    const keys = createMemoryPublishKeys({ ttlMs: 60_000, inFlightMs: 5_000, now: time.now });
    expect(await keys.claim('k', 'f', 't1')).toEqual({ claimed: true });
    expect(await keys.claim('k', 'f', 't2')).toEqual({ claimed: false, record: { state: 'in-flight', fingerprint: 'f', token: 't1' } });
    await keys.release('k', 'f', 't2');
    expect((await keys.claim('k', 'f', 't3')).claimed).toBe(false);
    await keys.release('k', 'f', 't1');
    expect(await keys.claim('k', 'f', 't4')).toEqual({ claimed: true });

    const event = eventOf('evt_1');
    await keys.remember('k', { state: 'done', fingerprint: 'f', event });
    // A remembered event is not an in-flight try: releasing does not forget it.
    await keys.release('k', 'f', 't4');
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

  it('counts the bytes it holds through overwrites, releases and evictions, forgetting the oldest keys first but never the one just written', async () => {
    const times = { ttlMs: 60_000, inFlightMs: 5_000 };
    const done = (id: string) => ({ state: 'done' as const, fingerprint: 'f', event: eventOf(`evt_${id}`) });
    const probe = createMemoryPublishKeys(times);
    await probe.remember('a', done('a'));
    const one = probe.bytes;
    expect(one).toBeGreaterThan(0);

    const keys = createMemoryPublishKeys({ ...times, maxBytes: Math.floor(2.5 * one) });
    await keys.remember('a', done('a'));
    await keys.remember('b', done('b'));
    expect(keys.bytes).toBe(2 * one);
    await keys.remember('c', done('c'));
    expect(keys.bytes).toBe(2 * one);
    // Overwriting a key replaces its bytes.
    await keys.remember('c', done('c'));
    expect(keys.bytes).toBe(2 * one);
    expect((await keys.claim('b', 'f', 't')).claimed).toBe(false);
    expect((await keys.claim('c', 'f', 't')).claimed).toBe(false);
    // The oldest went; claiming it takes it, and releasing gives its bytes back.
    expect(await keys.claim('a', 'f', 't')).toEqual({ claimed: true });
    await keys.release('a', 'f', 't');
    expect(keys.bytes).toBe(2 * one);

    const tiny = createMemoryPublishKeys({ ...times, maxBytes: 10 });
    await tiny.remember('huge', done('huge'));
    expect((await tiny.claim('huge', 'f', 't')).claimed).toBe(false);
    await tiny.close();
    expect(tiny.bytes).toBe(0);
  });
});

describe('publish key names and fingerprints', () => {
  it('accepts 1–255 printable ASCII characters without spaces', () => {
    expect(isValidKey('0f8fad5b-d9cb-469f-a165-70867728950e')).toBe(true);
    expect(isValidKey('x'.repeat(255))).toBe(true);
    for (const bad of ['', 'x'.repeat(256), 'a b', 'tab\there', 'é']) expect(isValidKey(bad)).toBe(false);
  });

  it('gives two scopes different ids, and two requests different fingerprints, whatever the order of an object’s keys', () => {
    const a = keyId({ app: 'shop', env: 'prod', tenant: 'a' }, 'k');
    expect(keyId({ app: 'shop', env: 'prod', tenant: 'a' }, 'k')).toBe(a);
    expect(keyId({ app: 'shop', env: 'prod', tenant: 'b' }, 'k')).not.toBe(a);
    expect(keyId({ app: 'shop', env: 'prod', tenant: undefined }, 'k')).not.toBe(a);
    const fingerprint = requestFingerprint('orders', 'message', { n: 1, line: { sku: 'x', qty: 2 }, tags: [{ b: 1, a: 2 }] });
    expect(requestFingerprint('orders', 'message', { tags: [{ a: 2, b: 1 }], line: { qty: 2, sku: 'x' }, n: 1 })).toBe(fingerprint);
    expect(requestFingerprint('orders', 'message', { n: 2, line: { sku: 'x', qty: 2 }, tags: [{ b: 1, a: 2 }] })).not.toBe(fingerprint);
    expect(requestFingerprint('orders', 'shipped', { n: 1, line: { sku: 'x', qty: 2 }, tags: [{ b: 1, a: 2 }] })).not.toBe(fingerprint);
    // Array order is part of the request.
    expect(requestFingerprint('orders', 'message', { n: 1, line: { sku: 'x', qty: 2 }, tags: [{ b: 1, a: 2 }, 1] })).not.toBe(
      requestFingerprint('orders', 'message', { n: 1, line: { sku: 'x', qty: 2 }, tags: [1, { b: 1, a: 2 }] }),
    );
  });
});
