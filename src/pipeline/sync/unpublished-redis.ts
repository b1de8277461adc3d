import type { Redis } from 'ioredis';
import { defineScript } from '../redis-script.ts';
import { unavailableOnFailure } from './document-cache-errors.ts';
import type { DocumentKey } from './documents.ts';
import { decodeEvent, type DocumentEvent, type UnpublishedMarks } from './unpublished-events.ts';

/**
 * The marks of unpublished document events in Redis (`unpublished-events.ts`), for the cache in
 * async durability, where a change is acknowledged once Redis has it: the cache's write script
 * (`document-cache-scripts.ts` WRITE) marks the change's event in the same script. Per document a
 * hash `{entry}:unpublished` (revision → encoded event), and one sorted set of the documents that
 * have any, scored by when the first of them was marked (Redis time). Like the changes, they are
 * lost if Redis loses its data.
 */

/** The hash of a document's unpublished events, beside its cache entry. */
export function unpublishedEventsKey(entryKey: string): string {
  return `${entryKey}:unpublished`;
}

/** The set of the documents with unpublished events. */
export function unpublishedSetKey(keyPrefix: string): string {
  return `${keyPrefix}doc:unpublished`;
}

/** KEYS: the document's hash, the set. ARGV: the entry key, then revisions. Removes them; the document leaves the set once none is left. */
const REMOVE = `
redis.call('HDEL', KEYS[1], unpack(ARGV, 2))
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
`;

type RemoveCommand = (events: string, set: string, entryKey: string, ...revisions: number[]) => Promise<number>;

export interface RedisMarksOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** The cache entry key of a document (`DocumentCache.entryKey`). */
  readonly entryKey: (key: DocumentKey) => string;
  readonly graceMs: number;
}

export function createRedisMarks(options: RedisMarksOptions): UnpublishedMarks {
  const { redis, entryKey, graceMs } = options;
  const setKey = unpublishedSetKey(options.keyPrefix);
  const removeScript = defineScript<RemoveCommand>(redis, 'tributaryDocUnpublishedRemove', 2, REMOVE);

  const eventsOf = async (entry: string): Promise<DocumentEvent[]> => {
    const fields = await unavailableOnFailure(redis.hgetall(unpublishedEventsKey(entry)));
    return Object.values(fields)
      .map((text) => decodeEvent(text))
      .sort((a, b) => a.payload.revision - b.payload.revision);
  };

  return {
    async earlier(key, revision) {
      return (await eventsOf(entryKey(key))).filter((event) => event.payload.revision < revision);
    },

    async remove(key, revisions) {
      if (revisions.length === 0) return;
      const entry = entryKey(key);
      await unavailableOnFailure(removeScript(unpublishedEventsKey(entry), setKey, entry, ...revisions));
    },

    async due(limit) {
      // Not claimed: the sweep publishes a document's events under its write lock, which is the claim.
      const [seconds, micros] = await unavailableOnFailure(redis.time());
      const before = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - graceMs;
      const entries = await unavailableOnFailure(redis.zrangebyscore(setKey, '-inf', before, 'LIMIT', 0, limit));
      const due: DocumentEvent[] = [];
      for (const entry of entries) {
        const events = await eventsOf(entry);
        // Emptied without leaving the set (a removal cut short): nothing to publish.
        if (events.length === 0) await unavailableOnFailure(redis.zrem(setKey, entry));
        due.push(...events.slice(0, Math.max(1, limit - due.length)));
        if (due.length >= limit) break;
      }
      return due;
    },
  };
}
