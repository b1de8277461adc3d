/**
 * Leader election of the CDC reader against a real Redis: one leader among contenders, prompt
 * handover on release, takeover after a leader dies or is paused, and re-election after Redis
 * restarts. Short TTLs (300 ms) wherever expiry is the point; long ones where it must not interfere.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createLeaderElection } from '../../src/pipeline/coordination/leader-election.ts';
import type { DemotionReason, LeaderElection, LeaderElectionOptions, LeaderLease } from '../../src/pipeline/coordination/leader-election.ts';
import { closeRedis, createRedisClient } from '../../src/redis-clients.ts';
import { startPrivateRedis, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const MODULE_URL = pathToFileURL(new URL('../../src/pipeline/coordination/leader-election.ts', import.meta.url).pathname).href;
const FAST = { ttlMs: 300, heartbeatMs: 100, pollMs: 200 } as const;
const NO_POLL = { ttlMs: 5_000, heartbeatMs: 500, pollMs: 60_000 } as const;

interface Contender {
  readonly name: string;
  readonly election: LeaderElection;
  /** Its command connection, as the server would make it. */
  readonly redis: Redis;
  readonly leases: LeaderLease[];
  readonly demotions: DemotionReason[];
}

/**
 * A started-later election on a connection of its own; every term's start, abort and demotion
 * goes to `journal` in the order they happen. Stopped (then its connection closed) when the test ends.
 */
function contender(
  name: string,
  url: string,
  key: string,
  journal: string[],
  options: Partial<LeaderElectionOptions> = {},
): Contender {
  const redis = createRedisClient(url, `leader-${name}`, logger);
  onTestFinished(() => closeRedis(redis));
  const leases: LeaderLease[] = [];
  const demotions: DemotionReason[] = [];
  const election = createLeaderElection({
    redis,
    key,
    holderId: name,
    logger,
    onElected(lease) {
      leases.push(lease);
      journal.push(`${name} elected`);
      lease.signal.addEventListener('abort', () => journal.push(`${name} aborted`), { once: true });
    },
    onDemoted(_lease, reason) {
      demotions.push(reason);
      journal.push(`${name} demoted ${reason}`);
    },
    ...options,
  });
  onTestFinished(() => election.stop());
  return { name, election, redis, leases, demotions };
}

function leaders(contenders: readonly Contender[]): Contender[] {
  return contenders.filter((c) => c.election.isLeader());
}

/** A plain connection for inspecting; it deletes `keys` (the shared Redis outlives the test) and quits when the test ends. */
function admin(url: string, ...keys: string[]): Redis {
  const redis = new Redis(url);
  onTestFinished(async () => {
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  return redis;
}

/** A lock key of the test's own on the shared Redis, and a connection that cleans it up. */
function sharedLock(): { key: string; redis: Redis } {
  const key = `${uniquePrefix()}cdc:leader:orders`;
  return { key, redis: admin(testRedisUrl(), key, `${key}:fencing`) };
}

function names(contenders: readonly Contender[]): string[] {
  return contenders.map((c) => c.name);
}

interface ChildContender {
  /** Lines the child printed, parsed: `{ event: 'elected' | 'demoted', … }`. */
  readonly events: { event: string; reason?: string; token?: number }[];
  signal(name: NodeJS.Signals): void;
}

/** A contender in a process of its own, so that it can really be paused (SIGSTOP) and resumed. */
function childContender(url: string, key: string): ChildContender {
  const code = `
    import { Redis } from 'ioredis';
    import { pino } from 'pino';
    const { createLeaderElection } = await import(${JSON.stringify(MODULE_URL)});
    const say = (line) => process.stdout.write(JSON.stringify(line) + '\\n');
    const redis = new Redis(${JSON.stringify(url)}, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    const election = createLeaderElection({
      redis, key: ${JSON.stringify(key)}, holderId: 'paused', logger: pino({ level: 'silent' }),
      ttlMs: ${FAST.ttlMs}, heartbeatMs: ${FAST.heartbeatMs}, pollMs: ${FAST.pollMs},
      onElected: (lease) => say({ event: 'elected', token: lease.fencingToken }),
      onDemoted: (_lease, reason) => say({ event: 'demoted', reason }),
    });
    await election.start();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  const events: ChildContender['events'] = [];
  createInterface({ input: child.stdout }).on('line', (line) => events.push(JSON.parse(line) as ChildContender['events'][number]));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.once('exit', (code, signal) => events.push({ event: `exited ${code ?? signal} ${stderr}` }));
  return { events, signal: (name) => child.kill(name) };
}

describe('leader election', () => {
  it('elects exactly one of three contenders, and each successor has a larger fencing token', async () => {
    const { key, redis } = sharedLock();
    const journal: string[] = [];
    const contenders = ['a', 'b', 'c'].map((name) => contender(name, testRedisUrl(), key, journal, NO_POLL));
    // Every start() has made its first attempt when it resolves: all three tried, one won.
    await Promise.all(contenders.map((c) => c.election.start()));
    expect(leaders(contenders)).toHaveLength(1);
    expect(journal).toHaveLength(1);

    const tokens: number[] = [];
    for (let term = 1; term <= 3; term += 1) {
      const [leader] = leaders(contenders);
      if (!leader) throw new Error(`no leader in term ${term}: ${journal.join(', ')}`);
      tokens.push(leader.election.lease()?.fencingToken ?? Number.NaN);
      await leader.election.stop();
      expect(leader.leases[0]?.signal.aborted).toBe(true);
      if (term < 3) await waitFor(() => leaders(contenders).length === 1, { message: `a successor in term ${term + 1}` });
    }
    expect(tokens).toEqual([...tokens].sort((x, y) => x - y));
    expect(new Set(tokens).size).toBe(3);
    expect(journal.filter((entry) => entry.endsWith('elected'))).toHaveLength(3);
    expect(await redis.exists(key)).toBe(0);
  });

  it('hands over at once when the leader stops: the release signal wakes a follower that would not poll for a minute', async () => {
    const { key, redis } = sharedLock();
    const journal: string[] = [];
    const a = contender('a', testRedisUrl(), key, journal, NO_POLL);
    await a.election.start();
    const b = contender('b', testRedisUrl(), key, journal, NO_POLL);
    await b.election.start();
    expect(journal).toEqual(['a elected']);

    await a.election.stop();
    await waitFor(() => b.election.isLeader(), { message: 'b elected through the release signal' });
    expect(journal).toEqual(['a elected', 'a aborted', 'a demoted stopped', 'b elected']);
    expect(a.election.isLeader()).toBe(false);
    expect(await redis.get(key)).toBe(`b:${b.leases[0]?.fencingToken}`);
  });

  it('lets a follower take over after the TTL when the leader dies without releasing, and the old lease ends first', async () => {
    const { key, redis } = sharedLock();
    const journal: string[] = [];
    const a = contender('a', testRedisUrl(), key, journal, FAST);
    await a.election.start();
    const b = contender('b', testRedisUrl(), key, journal, FAST);
    await b.election.start();
    expect(journal).toEqual(['a elected']);

    // The leader's command connection goes: no extension, no release.
    a.redis.disconnect();
    await waitFor(() => b.election.isLeader(), { message: 'b takes over' });
    expect(journal.slice(0, 4)).toEqual(['a elected', 'a aborted', 'a demoted expired', 'b elected']);
    expect(a.election.isLeader()).toBe(false);
    expect(b.leases[0]?.fencingToken).toBeGreaterThan(a.leases[0]?.fencingToken ?? Infinity);
    expect(await redis.get(key)).toBe(`b:${b.leases[0]?.fencingToken}`);
  });

  it('demotes a paused leader that wakes up after its lock was taken, without touching the new holder\'s lock', async () => {
    const { key, redis } = sharedLock();
    const paused = childContender(testRedisUrl(), key);
    await waitFor(() => paused.events.length > 0, { timeoutMs: 15_000, message: 'the child reports' });
    expect(paused.events).toEqual([{ event: 'elected', token: expect.any(Number) as number }]);

    // Frozen, heartbeat and all; once its key expires another holder takes it, with no TTL so any
    // extension by the old holder would show.
    paused.signal('SIGSTOP');
    await waitFor(async () => (await redis.set(key, 'intruder', 'NX')) === 'OK', { message: 'the frozen leader\'s key expires' });
    paused.signal('SIGCONT');

    await waitFor(() => paused.events.length > 1, { message: 'the woken leader reports' });
    expect(paused.events[1]).toMatchObject({ event: 'demoted', reason: expect.stringMatching(/^(expired|lost)$/) as string });
    expect(await redis.get(key)).toBe('intruder');
    expect(await redis.pttl(key)).toBe(-1);
  });

  it('demotes a leader whose key now holds another value, and never extends it (compare-and-extend)', async () => {
    const { key, redis } = sharedLock();
    const journal: string[] = [];
    const a = contender('a', testRedisUrl(), key, journal, { ttlMs: 5_000, heartbeatMs: 100, pollMs: 60_000 });
    await a.election.start();
    expect(a.election.isLeader()).toBe(true);

    // As after a failover that lost the key and another instance's acquisition.
    await redis.set(key, 'someone-else');
    await waitFor(() => a.demotions.length === 1, { message: 'a notices at its next heartbeat' });
    expect(journal).toEqual(['a elected', 'a aborted', 'a demoted lost']);
    expect(a.election.isLeader()).toBe(false);
    expect(await redis.get(key)).toBe('someone-else');
    expect(await redis.pttl(key)).toBe(-1);
  });

  it('re-establishes exactly one leader, with a larger fencing token, after Redis restarts without its data', async () => {
    const server = await startPrivateRedis();
    const key = `${uniquePrefix()}cdc:leader:orders`;
    const journal: string[] = [];
    const contenders = ['a', 'b', 'c'].map((name) => contender(name, server.url, key, journal, FAST));
    await Promise.all(contenders.map((c) => c.election.start()));
    const [first] = leaders(contenders);
    if (!first) throw new Error(`no leader: ${journal.join(', ')}`);
    const before = first.leases[0]?.fencingToken ?? Infinity;

    await server.stop();
    await waitFor(() => first.demotions.length === 1, { message: 'the leader gives up while Redis is away' });
    expect(first.demotions).toEqual(['expired']);
    expect(names(leaders(contenders))).toEqual([]);
    const electedBefore = journal.filter((entry) => entry.endsWith('elected')).length;

    await server.start();
    const redis = admin(server.url);
    await waitFor(() => leaders(contenders).length > 0, { timeoutMs: 15_000, message: 'a leader after the restart' });
    // Every contender is back on its release channel, so each has looked at the lock again.
    await waitFor(async () => ((await redis.pubsub('NUMSUB', `${key}:released`)) as [string, number])[1] === 3, {
      timeoutMs: 15_000,
      message: 'all contenders re-subscribed',
    });
    const [leader, ...others] = leaders(contenders);
    expect(names(others)).toEqual([]);
    expect(journal.filter((entry) => entry.endsWith('elected'))).toHaveLength(electedBefore + 1);
    const token = leader?.election.lease()?.fencingToken;
    expect(await redis.get(key)).toBe(`${leader?.name}:${token}`);
    expect(token).toBeGreaterThan(before);
  });
});
