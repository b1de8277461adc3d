/**
 * Rate limits per subject — the app, env, tenant and subject of a verified token — on what one
 * caller's requests cost everyone else:
 *
 * - publishes, channel broadcasts and document writes (`PUBLISH_RATE_PER_SECOND`): each copy fans
 *   out to every subscriber or member, so one subject publishing as fast as it can takes the
 *   delivery capacity of every tenant on the instance (20 broadcasts of 60 KB to 2,000 members sent
 *   1.5 GB); a document write publishes its change, and writes to Redis and the database besides;
 * - topic streams created (`TOPIC_NEW_STREAMS_PER_MINUTE`): a `topicCursor` or `events` on a name
 *   without a history creates it in the log (in Redis two keys that live the log's retention age,
 *   an hour by default), so new names at socket speed filled Redis up to its `maxmemory`; so does
 *   `createDocument`, each new document being a topic of its own.
 *
 * Fixed windows (rate-limiter-flexible): the budget is whole again a second (a minute) after the
 * window's first request, so a subject can burst its whole figure at once, and twice it across a
 * window's end. Publishes are counted by each instance in its memory: a Redis round trip more on
 * every publish would cost the path every event takes, and what one instance lets through is what
 * its own fan-out pays for. New streams, rare and each costing Redis memory for an hour, are
 * counted with Redis for the cluster (the process's command connection); while Redis fails, each
 * instance counts them on its own in memory (the insurance limiter).
 *
 * Admins are not exempt: the outbox, CDC and Tributary's own events do not go through `publish`,
 * and a back end that needs more raises the figure.
 */
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Principal } from '../auth/principal.ts';
import { ErrorCode, TributaryError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { EventLog } from './log/event-log.ts';
import { scopeKey, scopeOf } from './scope.ts';
import type { StreamRef } from './stream.ts';

export interface SubjectLimitsOptions {
  /** Publishes, broadcasts and document writes one subject may make per second (`PUBLISH_RATE_PER_SECOND`), all at once too. @default 1000 */
  readonly publishesPerSecond: number;
  /** Topic streams one subject may create per minute (`TOPIC_NEW_STREAMS_PER_MINUTE`), all at once too. @default 600 */
  readonly newStreamsPerMinute: number;
  /** The log whose streams `head` creates. */
  readonly log: EventLog;
  /** The process's command connection: the new-stream limit holds across instances. @default none: this process's memory */
  readonly redis?: Redis;
  /** Prefix of every Redis key (`REDIS_KEY_PREFIX`). @default 'trib:' */
  readonly keyPrefix?: string;
  readonly metrics: Pick<Metrics, 'subjectRateLimited'>;
  readonly logger: Logger;
}

export interface SubjectLimits {
  /**
   * Counts `count` publishes, broadcasts or document writes of `principal`'s subject.
   * @throws TributaryError RATE_LIMITED (`retryAfterMs`: when the budget is whole again) over
   *   `PUBLISH_RATE_PER_SECOND` (the refused request counts in its window too: harmless, the
   *   window's budget is spent either way).
   */
  admitPublishes(principal: Principal, count?: number): Promise<void>;
  /**
   * `log.head(stream)`, where creating the stream (it has no history) costs `principal`'s subject
   * one of its new streams; an existing stream costs nothing.
   * @throws TributaryError RATE_LIMITED (`retryAfterMs`) over `TOPIC_NEW_STREAMS_PER_MINUTE`: the
   *   stream is not created; UNAVAILABLE as `log.head`.
   */
  head(principal: Principal, stream: StreamRef): Promise<string>;
}

/** What a limit is for: the label of `tributary_subject_rate_limited_total` and the key's middle part. */
type LimitKind = 'publish' | 'new_stream';

interface Limit {
  readonly kind: LimitKind;
  readonly limiter: RateLimiterAbstract;
  /** The refusal's message, with the wait in ms. */
  readonly refusal: (retryAfterMs: number) => string;
}

export function createSubjectLimits(options: SubjectLimitsOptions): SubjectLimits {
  const { log, metrics, logger } = options;
  const keyPrefix = options.keyPrefix ?? 'trib:';
  const clusterLimiter = (kind: LimitKind, points: number, duration: number): RateLimiterAbstract => {
    const memory = new RateLimiterMemory({ points, duration });
    if (!options.redis) return memory;
    return new RateLimiterRedis({ storeClient: options.redis, keyPrefix: `${keyPrefix}subject-limit:${kind}`, points, duration, insuranceLimiter: memory });
  };
  const publishes: Limit = {
    kind: 'publish',
    limiter: new RateLimiterMemory({ points: options.publishesPerSecond, duration: 1 }),
    refusal: (ms) => `Too many publishes, broadcasts and document writes by this subject: at most ${options.publishesPerSecond} a second (PUBLISH_RATE_PER_SECOND); retry in ${ms} ms`,
  };
  const newStreams: Limit = {
    kind: 'new_stream',
    limiter: clusterLimiter('new_stream', options.newStreamsPerMinute, 60),
    refusal: (ms) => `Too many new topics by this subject: at most ${options.newStreamsPerMinute} a minute (TOPIC_NEW_STREAMS_PER_MINUTE) get a stream without a history; topics that have one are not limited; retry in ${ms} ms`,
  };

  const consume = async (limit: Limit, principal: Principal, points: number): Promise<void> => {
    try {
      await limit.limiter.consume(subjectKey(principal), points);
    } catch (error) {
      // The limiter rejects with its answer (not an Error) when over the limit.
      if (!(error instanceof RateLimiterRes)) throw error;
      const retryAfterMs = Math.max(1, Math.ceil(error.msBeforeNext));
      metrics.subjectRateLimited.inc({ kind: limit.kind });
      logger.debug({ subject: principal.subject, tenant: principal.tenant, kind: limit.kind, retryAfterMs }, 'rate limited');
      throw new TributaryError(ErrorCode.RATE_LIMITED, limit.refusal(retryAfterMs), { details: { retryAfterMs } });
    }
  };

  return {
    admitPublishes: (principal, count = 1) => consume(publishes, principal, count),
    // Consumed before the stream is created (not after, for one that was): creations that race
    // cannot pass the budget together. One made by someone else meanwhile has still cost a point.
    head: (principal, stream) => log.head(stream, { beforeCreate: () => consume(newStreams, principal, 1) }),
  };
}

/** A subject in its scope: the same `sub` in two tenants (or apps) is two callers. */
function subjectKey(principal: Principal): string {
  return `${scopeKey(scopeOf(principal))}:s=${encodeURIComponent(principal.subject)}`;
}
