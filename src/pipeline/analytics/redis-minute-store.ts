/**
 * The minute store in Redis: one hash per minute and environment (`code|topicKey` → count,
 * HINCRBY), a set per minute of the environments it holds, an index of minutes (a sorted set),
 * and a marker per applied batch chunk so a batch pushed again after an ambiguous failure (the
 * reply lost, not the write) adds nothing. A hash per environment because the readers are
 * environments: a hot-topics request reads its own environment's hash, never the whole cluster's
 * minute (another app's 100,000 fields: 0.9 s and Redis blocked 56 ms, for each request);
 * only the flusher reads them all, through the set. All keys share one hash tag (one cluster slot)
 * so a script may touch them together; every key expires.
 *
 * The store's generation: a random id the first push into a store holding no minute sets, and
 * that lives as long as a minute does — removed with the last flushed minute, so a new one starts
 * with the next push. Every push answers it: a pusher that finds another than its last push found
 * knows the store lost what it had pushed (Redis restarted without persistence, flushed, or evicted)
 * unless the workers had written it first (`pusher.ts`). A command that fails is UNAVAILABLE to
 * its caller (a hot-topics request answers 503 "retry", as with Postgres away).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import { defineScript } from '../redis-script.ts';
import type { MinuteStore } from './minute-store.ts';
import { decodeField, encodeCounts, environmentKey, environmentOfTopicKey, type TopicCounts } from './topic-counts.ts';

export interface RedisMinuteStoreOptions {
  readonly redis: Redis;
  /** The deployment's key prefix (`REDIS_KEY_PREFIX`). */
  readonly keyPrefix: string;
  /** Lifetime of a minute's data and of batch markers, in s: what is not flushed by then is lost. @default 7200 */
  readonly ttlSeconds?: number;
}

/** Field/increment pairs per script call: a push never blocks Redis for long. */
const PAIRS_PER_CALL = 5_000;

// KEYS: environment hash, minute's environment set, minute index, batch marker, generation.
// ARGV: minute (ms), ttl (s), environment key, the generation to start if none, then field,
// increment pairs. Answers the store's generation, whether the batch was applied now or before.
const PUSH = `
local generation = redis.call('GET', KEYS[5])
if not generation then generation = ARGV[4] end
redis.call('SET', KEYS[5], generation, 'EX', ARGV[2])
if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[2]) then return generation end
for i = 5, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2]) * 1000))
return generation
`;

// KEYS: environment hash, minute's environment set. ARGV: environment key, then field, negated
// count pairs. A field left at zero goes, and the environment with its last field: what was pushed
// since the read stays. Only fields still there are touched (never below zero): a minute another
// flusher removed meanwhile, or that expired, is not brought back as a hash of negative counts
// without expiry.
const TAKE = `
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 and redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
`;

// KEYS: minute's environment set, minute index, generation. ARGV: minute (ms). The minute leaves
// the index once no environment is left in it (an empty set no longer exists); the generation goes
// with the last minute, all it held being written.
const FORGET_IF_EMPTY = `
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[3]) end
return 1
`;

type PushCommand = (
  hashKey: string,
  setKey: string,
  indexKey: string,
  markerKey: string,
  generationKey: string,
  minute: number,
  ttlSeconds: number,
  environment: string,
  generation: string,
  ...pairs: (string | number)[]
) => Promise<string>;
type TakeCommand = (hashKey: string, setKey: string, environment: string, ...pairs: (string | number)[]) => Promise<number>;
type ForgetCommand = (setKey: string, indexKey: string, generationKey: string, minute: number) => Promise<number>;

export function createRedisMinuteStore(options: RedisMinuteStoreOptions): MinuteStore {
  const { redis } = options;
  const ttlSeconds = options.ttlSeconds ?? 7_200;
  const tag = `${options.keyPrefix}{analytics}`;
  const indexKey = `${tag}:minutes`;
  const generationKey = `${tag}:generation`;
  const hashKey = (minute: number, environment: string) => `${tag}:minute:${minute}:${environment}`;
  const setKey = (minute: number) => `${tag}:environments:${minute}`;
  const push = defineScript<PushCommand>(redis, 'tributaryAnalyticsPush', 5, PUSH);
  const take = defineScript<TakeCommand>(redis, 'tributaryAnalyticsTake', 2, TAKE);
  const forget = defineScript<ForgetCommand>(redis, 'tributaryAnalyticsForget', 3, FORGET_IF_EMPTY);

  /** Field/count pairs per environment, in the order `topics` gives them (a retry re-sends the same). */
  const pairsByEnvironment = (topics: ReadonlyMap<string, TopicCounts>) => {
    const byEnvironment = new Map<string, (string | number)[]>();
    for (const [topicKey, counts] of topics) {
      const environment = environmentOfTopicKey(topicKey);
      let pairs = byEnvironment.get(environment);
      if (!pairs) byEnvironment.set(environment, (pairs = []));
      encodeCounts(topicKey, counts, pairs);
    }
    return byEnvironment;
  };

  const readHash = async (key: string, into: Map<string, TopicCounts>, accept?: (topicKey: string) => boolean) => {
    const fields = await unavailableOnFailure(redis.hgetall(key));
    for (const field in fields) decodeField(into, field, Number(fields[field]), accept);
  };

  return {
    kind: 'redis',
    async push(batch) {
      // Deterministic chunks of one batch, each with its own marker: a retry re-sends the same
      // ones. Sent together (one round trip however many environments), applied once each.
      const calls: Promise<string>[] = [];
      let chunk = 0;
      const fresh = randomUUID();
      for (const [environment, pairs] of pairsByEnvironment(batch.topics)) {
        for (let start = 0; start < pairs.length; start += PAIRS_PER_CALL * 2, chunk += 1) {
          const slice = pairs.slice(start, start + PAIRS_PER_CALL * 2);
          const marker = `${tag}:batch:${batch.id}:${chunk}`;
          calls.push(push(hashKey(batch.minute, environment), setKey(batch.minute), indexKey, marker, generationKey, batch.minute, ttlSeconds, environment, fresh, ...slice));
        }
      }
      // The last call's: should the store lose its data between two calls, the later generation.
      const generations = await unavailableOnFailure(Promise.all(calls));
      return { generation: generations.at(-1) };
    },
    async minutes() {
      const members = await unavailableOnFailure(redis.zrange(indexKey, 0, -1));
      return members.map(Number).filter(Number.isFinite);
    },
    async read(minute, environment) {
      const topics = new Map<string, TopicCounts>();
      if (environment) {
        await readHash(hashKey(minute, environmentKey(environment.app, environment.env)), topics, environment.accept);
        return topics;
      }
      const environments = await unavailableOnFailure(redis.smembers(setKey(minute)));
      await Promise.all(environments.map((each) => readHash(hashKey(minute, each), topics)));
      return topics;
    },
    async remove(minute, written) {
      if (!written) {
        // A push landing between SMEMBERS and the deletion leaves its hash behind, unlisted: counts
        // for a minute flushed already (dropped anyway), gone when the hash expires.
        const environments = await unavailableOnFailure(redis.smembers(setKey(minute)));
        const deletion = redis.multi();
        for (const environment of environments) deletion.del(hashKey(minute, environment));
        await unavailableOnFailure(deletion.del(setKey(minute)).zrem(indexKey, String(minute)).exec());
        await unavailableOnFailure(forget(setKey(minute), indexKey, generationKey, minute));
        return;
      }
      const calls: Promise<number>[] = [];
      for (const [environment, pairs] of pairsByEnvironment(written)) {
        for (let index = 1; index < pairs.length; index += 2) pairs[index] = -(pairs[index] as number);
        for (let start = 0; start < pairs.length; start += PAIRS_PER_CALL * 2) {
          calls.push(take(hashKey(minute, environment), setKey(minute), environment, ...pairs.slice(start, start + PAIRS_PER_CALL * 2)));
        }
      }
      await unavailableOnFailure(Promise.all(calls));
      // Last (also when nothing was written): the minute leaves the index once it is empty.
      await unavailableOnFailure(forget(setKey(minute), indexKey, generationKey, minute));
    },
  };
}

/** A Redis command's failure as UNAVAILABLE (a client-facing code: the caller may retry). */
async function unavailableOnFailure<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (isTributaryError(error)) throw error;
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'Analytics are unavailable right now; retry shortly', { cause: error });
  }
}
