/**
 * Leader election on Redis: decides which instance *tries* to run a singleton job — a CDC source's
 * WAL reader (seed 000: "Leader election (Redis SET NX) ensures only one backend instance holds
 * the replication slot"), an outbox poller, a webhook scheduler. One election per key.
 *
 * The lock, on one key K:
 * - acquire: a script that, when K is absent, INCRs the fencing counter `K:fencing` and sets
 *   K = "<holderId>:<token>" with PX ttl, atomically, so tokens are ordered like acquisitions and
 *   a value is never reused. A missing counter (first use, or Redis lost its data) is seeded from
 *   Redis' TIME in µs, so a token issued after a data loss is still larger than every earlier one
 *   (as long as Redis' clock does not go back and there is less than one acquisition per µs);
 * - extend, every `heartbeatMs`: PEXPIRE K only if it still holds our value (compare-and-extend).
 *   A holder never extends a lock that someone else acquired, and a success proves nobody
 *   acquired K since: an acquisition would have written another token;
 * - release, on `stop()`: DEL K only if it holds our value, then PUBLISH on `K:released` so
 *   followers try at once. Otherwise followers try every `pollMs`, and when their signal
 *   connection comes back (a release may have been published while it was away).
 *
 * The local deadline. The leader counts, on a monotonic clock, from the moment it *sent* its last
 * successful acquire/extend (Redis started the TTL no earlier) and stops acting at
 * sent + ttl − safetyMargin, whether or not Redis answers: the lease's signal aborts then, before
 * the key can expire and another instance acquire it. The margin absorbs late timers and the
 * clock-rate difference between this host and Redis.
 *
 * The lock is not a fence. A process paused (GC, SIGSTOP, VM migration) past its deadline wakes
 * up still believing it leads until its timers run; a Redis restart without persistence or a
 * failover to a replica forgets the lock while the leader still acts. The lock only keeps
 * instances from *trying* at the same time; the caller must fence with the resource itself: a
 * logical replication slot serves one walsender at a time (START_REPLICATION fails with
 * 55006 object_in_use while another is active), or a Postgres advisory lock held on the reader's
 * connection. `lease.fencingToken` is for stores that can refuse writes from an older token.
 * Check `lease.isValid()` right before an irreversible step.
 *
 * Redis Cluster: K, `K:fencing` must share a slot, so give K a hash tag (`{cdc:source}:leader`).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { componentLogger, type Logger } from '../../logger.ts';
import { closeRedis } from '../../redis-clients.ts';
import { defineScript } from '../redis-script.ts';
import { createReleaseSignals, type ReleaseSignals } from './release-signals.ts';
import { within } from './within.ts';

/** Why a lease ended: the key is gone or held by another (`lost`), the local deadline passed without an extension (`expired`), or `stop()`. */
export type DemotionReason = 'lost' | 'expired' | 'stopped';

/** One term of leadership. */
export interface LeaderLease {
  readonly holderId: string;
  /** Larger than the token of every earlier acquisition of this key. */
  readonly fencingToken: number;
  /** Aborts when this term ends, at the latest at the local deadline; stop acting then. */
  readonly signal: AbortSignal;
  /** Not aborted and before the local deadline, read from the clock now (timers can be late). */
  isValid(): boolean;
}

export interface LeaderElectionOptions {
  /** Command connection; it should fail fast while Redis is away (`enableOfflineQueue: false`). */
  readonly redis: Redis;
  /**
   * Where release signals arrive: share one per process (`createReleaseSignals(subscriber)`) so
   * that elections add no connections. Not closed by `stop()`.
   * @default release signals on a connection of the election's own (`redis.duplicate()`), closed by `stop()`
   */
  readonly signals?: ReleaseSignals;
  /** The lock's key, e.g. `${prefix}cdc:leader:${sourceId}`; `${key}:fencing` and `${key}:released` are derived. */
  readonly key: string;
  /** Unique per instance. @default a random UUID */
  readonly holderId?: string;
  /** Lock lifetime without an extension, in ms. @default 10000 */
  readonly ttlMs?: number;
  /** Interval between extensions, in ms; below ttlMs − safetyMarginMs. @default 3000 */
  readonly heartbeatMs?: number;
  /** Interval between a follower's attempts when no release signal arrives, in ms. @default 5000 */
  readonly pollMs?: number;
  /** How long before the key can expire the leader stops acting, in ms. @default ttlMs / 5 */
  readonly safetyMarginMs?: number;
  readonly logger: Logger;
  /** A term begins. Not awaited: start the work and stop it when `lease.signal` aborts. */
  readonly onElected?: (lease: LeaderLease) => void | Promise<void>;
  /**
   * A term ended (`lease.signal` has aborted). On `stop()` the lock is released only after the
   * returned promise settles: finish the reader's shutdown here so the successor finds the slot free.
   */
  readonly onDemoted?: (lease: LeaderLease, reason: DemotionReason) => void | Promise<void>;
}

export interface LeaderElection {
  readonly holderId: string;
  /** Subscribes to release signals and makes the first attempt; resolves when both were tried. */
  start(): Promise<void>;
  /** Ends the term if leading (awaiting `onDemoted`), releases the lock, closes the signal connection. Idempotent. */
  stop(): Promise<void>;
  /** Holds a lease whose local deadline has not passed. */
  isLeader(): boolean;
  /** The current lease, if any. */
  lease(): LeaderLease | undefined;
}

// Returns the new fencing token, or nil when the key is held.
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
end
local token = redis.call('INCR', KEYS[2])
-- The counter's own text: Lua would print a number this large as 1.79e+15.
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. redis.call('GET', KEYS[2]), 'PX', ARGV[2])
return token`;
const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1`;

interface Term {
  readonly lease: LeaderLease;
  readonly value: string;
  readonly controller: AbortController;
  deadline: number;
}

export function createLeaderElection(options: LeaderElectionOptions): LeaderElection {
  const { redis, key } = options;
  const holderId = options.holderId ?? randomUUID();
  const ttlMs = options.ttlMs ?? 10_000;
  const heartbeatMs = options.heartbeatMs ?? 3_000;
  const pollMs = options.pollMs ?? 5_000;
  const marginMs = options.safetyMarginMs ?? Math.ceil(ttlMs / 5);
  if (key === '') throw new Error('leader election: key must not be empty');
  if (!(marginMs >= 0 && marginMs < ttlMs)) throw new Error(`leader election: safetyMarginMs (${marginMs}) must be in [0, ttlMs (${ttlMs}))`);
  if (!(heartbeatMs > 0 && heartbeatMs < ttlMs - marginMs)) {
    throw new Error(`leader election: heartbeatMs (${heartbeatMs}) must be positive and below ttlMs - safetyMarginMs (${ttlMs - marginMs})`);
  }
  if (!(pollMs > 0)) throw new Error(`leader election: pollMs (${pollMs}) must be positive`);
  const fencingKey = `${key}:fencing`;
  const releaseChannel = `${key}:released`;
  const log = componentLogger(options.logger, 'leader-election', { key, holderId });
  const now = () => performance.now();

  const acquireScript = defineScript<(key: string, fencing: string, holder: string, ttl: number) => Promise<unknown>>(redis, 'leaderAcquire', 2, ACQUIRE);
  const extendScript = defineScript<(key: string, value: string, ttl: number) => Promise<unknown>>(redis, 'leaderExtend', 1, EXTEND);
  const releaseScript = defineScript<(key: string, value: string, channel: string) => Promise<unknown>>(redis, 'leaderRelease', 1, RELEASE);

  let term: Term | undefined;
  let ownConnection: Redis | undefined;
  let stopListening: (() => Promise<void>) | undefined;
  let started: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  let looping: Promise<void> = Promise.resolve();
  let stopping = false;
  let failing = false;
  let expiryTimer: NodeJS.Timeout | undefined;
  // The loop's current pause, and whether a wake-up arrived while it was not pausing.
  let interruptNap: (() => void) | undefined;
  let wakeEarly = false;

  function reportFailure(error: unknown) {
    if (!failing) log.warn({ err: error }, 'leader election cannot reach redis; retrying');
    failing = true;
  }
  function reportSuccess() {
    if (failing) log.info('leader election reaches redis again');
    failing = false;
  }

  function wake() {
    if (term) return;
    if (interruptNap) interruptNap();
    else wakeEarly = true;
  }

  function nap(ms: number): Promise<void> {
    if (wakeEarly || stopping) {
      wakeEarly = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        interruptNap = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      interruptNap = done;
    });
  }

  function scheduleExpiry(current: Term) {
    clearTimeout(expiryTimer);
    expiryTimer = setTimeout(() => {
      if (term !== current) return;
      // A timer may fire a little before the monotonic clock reaches the deadline.
      if (now() >= current.deadline) void demote(current, 'expired');
      else scheduleExpiry(current);
    }, Math.max(0, Math.ceil(current.deadline - now())));
  }

  function demote(current: Term, reason: DemotionReason): Promise<void> {
    if (term !== current) return Promise.resolve();
    term = undefined;
    clearTimeout(expiryTimer);
    current.controller.abort(new Error(`leadership of ${key} ended: ${reason}`));
    log[reason === 'stopped' ? 'info' : 'warn']({ reason, fencingToken: current.lease.fencingToken }, 'no longer the leader');
    return settle('onDemoted', () => options.onDemoted?.(current.lease, reason));
  }

  async function settle(name: string, run: () => void | Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      log.error({ err: error }, `${name} failed`);
    }
  }

  /**
   * A reply later than a lease is long cannot keep anyone safe, and a hung Redis must not hang
   * the loop or `stop()`; a command that still runs after this only delays a successor by one TTL.
   */
  function answered<T>(reply: Promise<T>): Promise<T> {
    return within(reply, ttlMs, `redis did not answer within ${ttlMs} ms`);
  }

  async function release(value: string): Promise<void> {
    try {
      await answered(releaseScript(key, value, releaseChannel));
    } catch (error) {
      log.warn({ err: error }, 'could not release the leader lock; it expires on its own');
    }
  }

  async function acquire(): Promise<void> {
    const sentAt = now();
    let token: unknown;
    try {
      token = await answered(acquireScript(key, fencingKey, holderId, ttlMs));
      reportSuccess();
    } catch (error) {
      reportFailure(error);
      return;
    }
    if (typeof token !== 'number') return;
    const value = `${holderId}:${token}`;
    const deadline = sentAt + ttlMs - marginMs;
    // An answer that arrives after its own deadline (or after stop) cannot be used: give it back.
    if (stopping || now() >= deadline) return release(value);
    const controller = new AbortController();
    const current: Term = {
      value,
      controller,
      deadline,
      lease: { holderId, fencingToken: token, signal: controller.signal, isValid: () => term === current && now() < current.deadline },
    };
    term = current;
    scheduleExpiry(current);
    log.info({ fencingToken: token }, 'elected leader');
    // Not awaited: the caller's work must not hold up the heartbeat.
    void settle('onElected', () => options.onElected?.(current.lease));
  }

  async function extend(current: Term): Promise<void> {
    if (now() >= current.deadline) return demote(current, 'expired');
    const sentAt = now();
    let extended: unknown;
    try {
      extended = await answered(extendScript(key, current.value, ttlMs));
      reportSuccess();
    } catch (error) {
      // The expiry timer ends the term if no extension succeeds in time.
      reportFailure(error);
      return;
    }
    if (term !== current) return;
    if (extended === 1) {
      current.deadline = sentAt + ttlMs - marginMs;
      scheduleExpiry(current);
    } else {
      await demote(current, 'lost');
    }
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      await nap(term ? heartbeatMs : pollMs);
      if (stopping) break;
      try {
        if (term) await extend(term);
        else await acquire();
      } catch (error) {
        log.error({ err: error }, 'leader election step failed');
      }
    }
  }

  async function listen(): Promise<void> {
    let signals = options.signals;
    if (!signals) {
      // The one Redis connection an election opens itself, with the command connection's settings
      // (a SUBSCRIBE takes a connection over): only without the process's shared signals, which the
      // server's CDC readers are given. Closed by stop().
      ownConnection = redis.duplicate();
      // Errors are retried by ioredis and reported by the command connection's failures.
      ownConnection.on('error', () => {});
      signals = createReleaseSignals(ownConnection, log);
    }
    stopListening = await signals.listen(releaseChannel, wake);
  }

  return {
    holderId,
    isLeader: () => term !== undefined && now() < term.deadline,
    lease: () => term?.lease,
    start() {
      started ??= (async () => {
        if (stopping) throw new Error('leader election: start() after stop()');
        await Promise.all([listen(), connected(redis, ttlMs)]);
        if (stopping) return;
        await acquire();
        looping = loop();
      })();
      return started;
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        interruptNap?.();
        await started?.catch(() => {});
        await looping;
        const current = term;
        if (current) {
          await demote(current, 'stopped');
          await release(current.value);
        }
        clearTimeout(expiryTimer);
        await stopListening?.();
        if (ownConnection) {
          await closeRedis(ownConnection).catch((error: unknown) => log.warn({ err: error }, 'closing the signal connection failed'));
        }
      })();
      return stopped;
    },
  };
}

/** Settles when the command connection is ready, fails, or after `ms`: a first attempt on a connection still connecting would fail for nothing. */
function connected(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    redis.once('ready', done);
    redis.once('error', done);
  });
}
