import type { Redis } from 'ioredis';
import { ErrorCode, InternalError, TributaryError } from '../../errors.ts';
import { hasEventFields } from '../events/envelope.ts';
import { isJsonObject } from '../events/json.ts';
import { defineScript } from '../redis-script.ts';
import { inFlightRecord, type KeyRecord, type PublishKeys, type PublishKeyTimes } from './publish-keys.ts';

export interface RedisPublishKeysOptions extends PublishKeyTimes {
  readonly redis: Redis;
  /** REDIS_KEY_PREFIX. */
  readonly keyPrefix: string;
}

/** KEYS[1] the key's record; ARGV[1] the in-flight record, ARGV[2] its lifetime in ms. Returns the record found, or nil when it took the key. */
const CLAIM = `
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** KEYS[1] the key's record; ARGV[1] the in-flight record that must still be there, exactly, to delete it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type ClaimCommand = (key: string, record: string, lifetimeMs: number) => Promise<string | null>;
type ReleaseCommand = (key: string, record: string) => Promise<number>;

/**
 * Keys in Redis, shared by every instance: one string per key (its record as JSON) that expires
 * with the key. A claim is one script (take the key unless it holds a record), so two instances
 * given the same key at once cannot both place an event. A record holds no payload (a few hundred
 * bytes): Redis holds about that times the keyed publishes of EVENT_PUBLISH_KEY_TTL_SECONDS — and a
 * document write's (`answered`: its revision and times, never its data) as much.
 */
export function createRedisPublishKeys(options: RedisPublishKeysOptions): PublishKeys {
  const { redis } = options;
  const claim = defineScript<ClaimCommand>(redis, 'tributaryPublishKeyClaim', 1, CLAIM);
  const release = defineScript<ReleaseCommand>(redis, 'tributaryPublishKeyRelease', 1, RELEASE);
  const redisKey = (id: string) => `${options.keyPrefix}publish-key:${id}`;

  return {
    async claim(id, fingerprint, token) {
      let found: string | null;
      try {
        found = await claim(redisKey(id), inFlightRecord(fingerprint, token), options.inFlightMs);
      } catch (error) {
        // As a publish (or document write) without a key while Redis is away: nothing was done, retry.
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'Idempotency keys are unavailable right now (Redis); nothing was done, retry shortly', { cause: error });
      }
      return found === null ? { claimed: true } : { claimed: false, record: parseRecord(id, found) };
    },
    async remember(id, record) {
      await redis.set(redisKey(id), JSON.stringify(record), 'PX', options.ttlMs);
    },
    async release(id, fingerprint, token) {
      // Only its own in-flight record: one that ran out and was claimed by another try stays.
      await release(redisKey(id), inFlightRecord(fingerprint, token));
    },
    async close() {},
  };
}

/**
 * A key's record as Redis holds it. One that is not a record (another version's, written by hand)
 * is a fault, not a guess: the publish fails INTERNAL_SERVER_ERROR (logged with the fault), and
 * places nothing, until the key expires.
 */
function parseRecord(id: string, stored: string): KeyRecord {
  let record: unknown;
  try {
    record = JSON.parse(stored);
  } catch (error) {
    throw new InternalError('PUBLISH_KEY_RECORD_CORRUPT', `the record of publish key ${id} is not JSON`, { cause: error });
  }
  if (!isKeyRecord(record)) throw new InternalError('PUBLISH_KEY_RECORD_CORRUPT', `the record of publish key ${id} is not one`);
  return record;
}

function isKeyRecord(value: unknown): value is KeyRecord {
  if (typeof value !== 'object' || value === null) return false;
  const { state, fingerprint, token, event } = value as Record<string, unknown>;
  if (typeof fingerprint !== 'string') return false;
  if (state === 'in-flight') return typeof token === 'string';
  if (state === 'answered') return isJsonObject((value as { answer?: unknown }).answer);
  return (state === 'placed' || state === 'done') && hasEventFields(event) && typeof (event as { cursor?: unknown }).cursor === 'string';
}
