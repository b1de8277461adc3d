/**
 * Each webhook endpoint's own limits, in memory (embedded) and shared through a real Redis by
 * several processes' gates: attempts in flight up to maxConcurrency, attempts started per second up
 * to rateLimitPerSecond, a slot given back on release, and a refusal that says how long to wait.
 * The Redis gate keeps a lease given back for its own next acquire a moment, then gives it back.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createMemoryGate, type EndpointGate, type GateAnswer } from '../../src/pipeline/webhooks/endpoint-gate.ts';
import { createRedisGate, KEEP_MS, REUSE_MS } from '../../src/pipeline/webhooks/redis-endpoint-gate.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

/** Gates of as many processes, each with its own connection, sharing one key prefix (closed when the test ends). */
function redisGates(count: number, options: { readonly prefix?: string; readonly now?: () => number } = {}): EndpointGate[] {
  const prefix = options.prefix ?? uniquePrefix();
  return Array.from({ length: count }, () => {
    const redis = new Redis(testRedisUrl());
    const gate = createRedisGate({ redis, keyPrefix: prefix, leaseMs: 30_000, ...(options.now && { now: options.now }) });
    onTestFinished(async () => {
      await gate.close();
      await redis.quit();
    });
    return gate;
  });
}

const kinds: [string, () => EndpointGate[]][] = [
  ['memory', () => [createMemoryGate()]],
  ['redis, two processes', () => redisGates(2)],
];

function granted(answer: GateAnswer): answer is Extract<GateAnswer, { ok: true }> {
  return answer.ok;
}

/** The slot of a granted answer; throws on a refusal. */
function slotOf(answer: GateAnswer): Extract<GateAnswer, { ok: true }> {
  if (!granted(answer)) throw new Error('refused');
  return answer;
}

describe.each(kinds)('the endpoint gate (%s)', (_kind, make) => {
  it('lets maxConcurrency attempts in at once, and one more once a slot is given back', async () => {
    const gates = make();
    const endpoint = { id: 'ep_concurrency', maxConcurrency: 3, rateLimitPerSecond: null };
    const answers = [];
    for (let n = 0; n < 4; n += 1) answers.push(await gates[n % gates.length]!.acquire(endpoint));
    expect(answers.map((answer) => answer.ok)).toEqual([true, true, true, false]);
    const refused = answers[3]!;
    expect(refused.ok === false && refused.retryInMs > 0).toBe(true);
    // Another endpoint is not held up by this one.
    expect((await gates[0]!.acquire({ ...endpoint, id: 'ep_other' })).ok).toBe(true);

    const first = answers[0]!;
    if (!granted(first)) throw new Error('the first attempt was refused');
    await first.release();
    expect((await gates.at(-1)!.acquire(endpoint)).ok).toBe(true);
  });

  it('grants no more than maxConcurrency to acquires made at the same moment', async () => {
    const gates = make();
    const endpoint = { id: 'ep_race', maxConcurrency: 3, rateLimitPerSecond: null };
    const answers = await Promise.all(Array.from({ length: 8 }, (_, n) => gates[n % gates.length]!.acquire(endpoint)));
    expect(answers.filter((answer) => answer.ok)).toHaveLength(3);
  });

  it('holds each endpoint to its own maximum when acquires for several arrive together, and frees slots given back together', async () => {
    const gates = make();
    const small = { id: 'ep_small', maxConcurrency: 2, rateLimitPerSecond: null };
    const large = { id: 'ep_large', maxConcurrency: 5, rateLimitPerSecond: null };
    const asks = Array.from({ length: 12 }, (_, n) => ({ gate: gates[n % gates.length]!, endpoint: n % 2 === 0 ? small : large }));
    const answers = await Promise.all(asks.map(({ gate, endpoint }) => gate.acquire(endpoint)));
    const grantedTo = (endpoint: { id: string }) => answers.filter((answer, n) => answer.ok && asks[n]!.endpoint === endpoint);
    expect(grantedTo(small)).toHaveLength(2);
    expect(grantedTo(large)).toHaveLength(5);
    await Promise.all([...grantedTo(small), ...grantedTo(large)].map((answer) => (answer.ok ? answer.release() : Promise.resolve())));
    const again = await Promise.all(Array.from({ length: 5 }, (_, n) => gates[n % gates.length]!.acquire(large)));
    expect(again.filter((answer) => answer.ok)).toHaveLength(5);
  });

  it('counts a slot free for the next acquire as soon as it is given back, before the release is answered', async () => {
    const gates = make();
    const gate = gates[0]!;
    const endpoint = { id: 'ep_handover', maxConcurrency: 2, rateLimitPerSecond: null };
    const [first, second] = (await Promise.all([gate.acquire(endpoint), gate.acquire(endpoint)])).map(slotOf);
    // The first slot given back (nothing awaited but microtasks: with Redis, no answer can have come —
    // the slot is kept and handed on); then the second given back and two acquires at once.
    const releasedFirst = first!.release();
    for (let tick = 0; tick < 3; tick += 1) await Promise.resolve();
    const releasedSecond = second!.release();
    const next = await Promise.all([gate.acquire(endpoint), gate.acquire(endpoint)]);
    await Promise.all([releasedFirst, releasedSecond]);
    expect(next.map((answer) => answer.ok)).toEqual([true, true]);
  });

  it('starts at most rateLimitPerSecond attempts in a second, and says how long to wait', async () => {
    const gates = make();
    const endpoint = { id: 'ep_rate', maxConcurrency: 100, rateLimitPerSecond: 2 };
    const answers = [];
    for (let n = 0; n < 3; n += 1) answers.push(await gates[n % gates.length]!.acquire(endpoint));
    expect(answers.map((answer) => answer.ok)).toEqual([true, true, false]);
    const refused = answers[2]!;
    expect(refused.ok === false && refused.retryInMs > 0 && refused.retryInMs <= 1_000).toBe(true);
  });
});

describe('the endpoint gate (redis) between attempts', () => {
  const endpoint = { id: 'ep_kept', maxConcurrency: 1, rateLimitPerSecond: null };

  it('keeps a slot given back for its own next acquire, and gives it to the other processes once idle', async () => {
    // A clock that moves only when told: the slot is kept until it does.
    let now = 0;
    const [mine, theirs] = redisGates(2, { now: () => now });
    const first = slotOf(await mine!.acquire(endpoint));
    const firstReleased = first.release();
    // Kept here: the other process finds the endpoint full; this one's next attempt takes the slot.
    expect((await theirs!.acquire(endpoint)).ok).toBe(false);
    const second = slotOf(await mine!.acquire(endpoint));
    await firstReleased;
    // Given back, and not taken here again within the moment it is kept: free for the other process.
    const secondReleased = second.release();
    now += KEEP_MS;
    await secondReleased;
    expect((await theirs!.acquire(endpoint)).ok).toBe(true);
  });

  it('takes its lease through Redis again once it is a second old', async () => {
    const prefix = uniquePrefix();
    let now = 0;
    const [gate] = redisGates(1, { prefix, now: () => now });
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    const key = `${prefix}webhook:inflight:${endpoint.id}`;
    void slotOf(await gate!.acquire(endpoint)).release();
    const [first] = await redis.zrange(key, 0, -1);
    now += REUSE_MS - 1;
    void slotOf(await gate!.acquire(endpoint)).release();
    expect(await redis.zrange(key, 0, -1)).toEqual([first]);
    now += 1;
    const fresh = slotOf(await gate!.acquire(endpoint));
    // The old lease given back before the new one was asked for, in the same call: one lease, a new one.
    const leases = await redis.zrange(key, 0, -1);
    expect(leases).toHaveLength(1);
    expect(leases[0]).not.toBe(first);
    // Kept on a clock that stands still: given back when the gate closes.
    void fresh.release();
  });

  it('hands over no more kept slots than a maxConcurrency lowered meanwhile allows, and gives the others back', async () => {
    const prefix = uniquePrefix();
    const [gate] = redisGates(1, { prefix });
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    const wide = { ...endpoint, id: 'ep_lowered', maxConcurrency: 2 };
    const slots = (await Promise.all([gate!.acquire(wide), gate!.acquire(wide)])).map(slotOf);
    for (const slot of slots) void slot.release();
    const narrow = { ...wide, maxConcurrency: 1 };
    const answers = await Promise.all([gate!.acquire(narrow), gate!.acquire(narrow)]);
    expect(answers.map((answer) => answer.ok)).toEqual([true, false]);
    expect(await redis.zcard(`${prefix}webhook:inflight:${wide.id}`)).toBe(1);
  });

  it('holds a maxConcurrency lowered meanwhile across processes, though it keeps a slot granted under the higher one', async () => {
    const [mine, theirs] = redisGates(2);
    const wide = { ...endpoint, id: 'ep_lowered_shared', maxConcurrency: 4 };
    const [kept] = (await Promise.all([mine!.acquire(wide), mine!.acquire(wide)])).map(slotOf);
    (await Promise.all([theirs!.acquire(wide), theirs!.acquire(wide)])).map(slotOf);
    void kept!.release();
    // One held here and two by the other process: at the new maximum of 2, the kept slot is not for this attempt.
    expect((await mine!.acquire({ ...wide, maxConcurrency: 2 })).ok).toBe(false);
  });

  it('holds an endpoint to the lowest maxConcurrency that asks of one moment name (read from the endpoint at different times)', async () => {
    const [gate] = redisGates(1);
    const id = 'ep_mixed_reads';
    const answers = await Promise.all([5, 2, 5].map((maxConcurrency) => gate!.acquire({ ...endpoint, id, maxConcurrency })));
    expect(answers.filter((answer) => answer.ok)).toHaveLength(2);
  });

  it('gives a slot released after it closed straight back', async () => {
    const prefix = uniquePrefix();
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    // On a clock that stands still, a slot kept would never go back by itself.
    const gate = createRedisGate({ redis, keyPrefix: prefix, leaseMs: 30_000, now: () => 0 });
    const slot = slotOf(await gate.acquire(endpoint));
    await gate.close();
    let givenBack = false;
    void slot.release().then(() => (givenBack = true));
    await waitFor(() => givenBack, { timeoutMs: 5_000, message: 'the slot given back' });
    expect(await redis.zcard(`${prefix}webhook:inflight:${endpoint.id}`)).toBe(0);
  });

  it('gives every kept slot back when it closes', async () => {
    const prefix = uniquePrefix();
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    // On a clock that stands still, the slots stay kept until the gate closes.
    const gate = createRedisGate({ redis, keyPrefix: prefix, leaseMs: 30_000, now: () => 0 });
    const slots = (await Promise.all([gate.acquire({ ...endpoint, maxConcurrency: 3 }), gate.acquire({ ...endpoint, maxConcurrency: 3 })])).map(slotOf);
    for (const slot of slots) void slot.release();
    expect(await redis.zcard(`${prefix}webhook:inflight:${endpoint.id}`)).toBe(2);
    await gate.close();
    expect(await redis.zcard(`${prefix}webhook:inflight:${endpoint.id}`)).toBe(0);
  });
});

describe('the endpoint gate (redis) when Redis fails', () => {
  /** A gate on a connection of its own, which the test also reads Redis through (closed when the test ends). */
  function gateWithRedis() {
    const prefix = uniquePrefix();
    const redis = new Redis(testRedisUrl());
    const gate = createRedisGate({ redis, keyPrefix: prefix, leaseMs: 30_000 });
    onTestFinished(async () => {
      await gate.close();
      await redis.quit();
    });
    return { prefix, redis, gate };
  }

  it('gives back the concurrency lease it took when its rate check fails, so the endpoint keeps all its places', async () => {
    const { prefix, redis, gate } = gateWithRedis();
    const endpoint = { id: 'ep_rate_broken', maxConcurrency: 1, rateLimitPerSecond: 5 };
    // A real Redis error between the lease and the rate check: the limiter's key holds a hash, so its INCRBY fails.
    const rateKey = `${prefix}webhook:rate:5:${endpoint.id}`;
    await redis.hset(rateKey, 'not', 'a counter');

    await expect(gate.acquire(endpoint)).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.zcard(`${prefix}webhook:inflight:${endpoint.id}`)).toBe(0);

    // The endpoint's one place is free: the next acquire gets it as soon as the rate check works.
    await redis.del(rateKey);
    expect((await gate.acquire(endpoint)).ok).toBe(true);
  });

  it('fails only the acquires of an endpoint whose lease script fails: another endpoint’s in the same batch get the leases Redis took for them', async () => {
    const { prefix, redis, gate } = gateWithRedis();
    const broken = { id: 'ep_lease_broken', maxConcurrency: 2, rateLimitPerSecond: null };
    const healthy = { id: 'ep_lease_healthy', maxConcurrency: 2, rateLimitPerSecond: null };
    // A real Redis error in one endpoint's script: its lease key holds a string, so the script's ZREMRANGEBYSCORE fails.
    await redis.set(`${prefix}webhook:inflight:${broken.id}`, 'not a sorted set');

    // Asked in the same tick, the two go to Redis in one batch.
    const [failing, second] = await Promise.allSettled([gate.acquire(broken), gate.acquire(healthy)]);
    expect(failing.status === 'rejected' ? String(failing.reason) : failing.status).toMatch(/WRONGTYPE/);
    expect(second).toMatchObject({ status: 'fulfilled', value: { ok: true } });
    // The healthy endpoint's lease is held by its acquire, which gives it back: none is left in Redis once the gate closes.
    if (second.status === 'fulfilled') await slotOf(second.value).release();
    await gate.close();
    expect(await redis.zcard(`${prefix}webhook:inflight:${healthy.id}`)).toBe(0);
  });
});
