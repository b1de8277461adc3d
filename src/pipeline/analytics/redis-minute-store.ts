/**
 * The minute store in Redis: one hash per minute (`code|topicKey` → count, HINCRBY), an index of
 * minutes (a sorted set), and a marker per applied batch so a batch pushed again after an
 * ambiguous failure (the reply lost, not the write) adds nothing. All keys share one hash tag
 * (one cluster slot) so the script may touch them together; every key expires.
 */
import type { Redis } from 'ioredis';
import { defineScript } from '../redis-script.ts';
import type { MinuteStore } from './minute-store.ts';
import { decodeField, encodeCounts, type TopicCounts } from './topic-counts.ts';

export interface RedisMinuteStoreOptions {
  readonly redis: Redis;
  /** The deployment's key prefix (`REDIS_KEY_PREFIX`). */
  readonly keyPrefix: string;
  /** Lifetime of a minute's data and of batch markers, in s: what is not flushed by then is lost. @default 7200 */
  readonly ttlSeconds?: number;
}

/** Field/increment pairs per script call: a push never blocks Redis for long. */
const PAIRS_PER_CALL = 5_000;

// KEYS: minute hash, minute index, batch marker. ARGV: minute (ms), ttl (s), then field, increment pairs.
const PUSH = `
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then return 0 end
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2]) * 1000))
return 1
`;

// KEYS: minute hash, minute index. ARGV: minute (ms), then field, negated count pairs. A field
// left at zero goes, and the minute with its last field: what was pushed since the read stays.
// Only fields still there are touched (never below zero): a minute another flusher removed
// meanwhile, or that expired, is not brought back as a hash of negative counts without expiry.
const TAKE = `
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 and redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
`;

type PushCommand = (minuteKey: string, indexKey: string, markerKey: string, minute: number, ttlSeconds: number, ...pairs: (string | number)[]) => Promise<number>;
type TakeCommand = (minuteKey: string, indexKey: string, minute: number, ...pairs: (string | number)[]) => Promise<number>;

export function createRedisMinuteStore(options: RedisMinuteStoreOptions): MinuteStore {
  const { redis } = options;
  const ttlSeconds = options.ttlSeconds ?? 7_200;
  const tag = `${options.keyPrefix}{analytics}`;
  const indexKey = `${tag}:minutes`;
  const minuteKey = (minute: number) => `${tag}:minute:${minute}`;
  const push = defineScript<PushCommand>(redis, 'tributaryAnalyticsPush', 3, PUSH);
  const take = defineScript<TakeCommand>(redis, 'tributaryAnalyticsTake', 2, TAKE);
  const pairsOf = (topics: ReadonlyMap<string, TopicCounts>) => {
    const pairs: (string | number)[] = [];
    for (const [topicKey, counts] of topics) encodeCounts(topicKey, counts, pairs);
    return pairs;
  };

  return {
    kind: 'redis',
    async push(batch) {
      const pairs = pairsOf(batch.topics);
      // Deterministic chunks of one batch, each with its own marker: a retry re-sends the same ones.
      for (let start = 0, chunk = 0; start < pairs.length; start += PAIRS_PER_CALL * 2, chunk += 1) {
        const slice = pairs.slice(start, start + PAIRS_PER_CALL * 2);
        await push(minuteKey(batch.minute), indexKey, `${tag}:batch:${batch.id}:${chunk}`, batch.minute, ttlSeconds, ...slice);
      }
    },
    async minutes() {
      const members = await redis.zrange(indexKey, 0, -1);
      return members.map(Number).filter(Number.isFinite);
    },
    async read(minute, accept) {
      const fields = await redis.hgetall(minuteKey(minute));
      const topics = new Map<string, TopicCounts>();
      for (const field in fields) decodeField(topics, field, Number(fields[field]), accept);
      return topics;
    },
    async remove(minute, written) {
      if (!written) {
        await redis.multi().del(minuteKey(minute)).zrem(indexKey, String(minute)).exec();
        return;
      }
      const pairs = pairsOf(written);
      for (let index = 1; index < pairs.length; index += 2) pairs[index] = -(pairs[index] as number);
      // The last call (an empty one when nothing was written) drops the minute once it is empty.
      let start = 0;
      do {
        await take(minuteKey(minute), indexKey, minute, ...pairs.slice(start, start + PAIRS_PER_CALL * 2));
        start += PAIRS_PER_CALL * 2;
      } while (start < pairs.length);
    },
  };
}
