import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { defineScript } from '../redis-script.ts';
import type { DocumentState } from './document-writes.ts';
import type { DocumentKey, JsonObject } from './documents.ts';

/**
 * The Redis side of the document hot cache: one hash per document, a set of dirty documents and
 * the cache's epoch. Every decision that must be atomic is one Lua script.
 *
 * An entry holds the document state plus:
 * - `f`, the revision known to be in Postgres (the entry is dirty while `f < r`). A dirty entry
 *   never expires (PERSIST) and is listed in the dirty set; a clean one expires after the TTL.
 * - `ceil`, the highest revision this entry may take before Postgres has raised its ceiling (see
 *   migration 0002): the bound on what a Redis crash can lose.
 * - `ep`, the cache epoch it was loaded in. The epoch key is random and created on first use, so a
 *   Redis that lost its data has a new one; a restarted Redis gets a new one too (`rotateEpoch`,
 *   by run id), because a restored snapshot may be older than what was acknowledged. An entry of
 *   another epoch is stale: it is reconciled with Postgres before use.
 */

export interface CachedEntry {
  readonly state: DocumentState;
  readonly epoch: string;
  readonly ceiling: number;
  /** Revision known to be in Postgres. */
  readonly flushed: number;
}

export type ReadResult =
  | { readonly status: 'hit'; readonly entry: CachedEntry }
  | { readonly status: 'stale'; readonly entry: CachedEntry }
  | { readonly status: 'miss' };

/** Outcome of a conditional write: `ok`, or why it was refused (the caller re-reads and retries). */
export type WriteResult = 'ok' | 'miss' | 'stale' | 'race' | 'ceiling';

export interface DocumentCache {
  /** The Redis key of a document's entry (also its member in the dirty set). */
  entryKey(key: DocumentKey): string;
  /** The current epoch, created when Redis has none. */
  epoch(): Promise<string>;
  /** Starts a new epoch when Redis restarted since the last call (its run id changed). */
  rotateEpochOnRestart(): Promise<void>;
  /** Reads an entry; a clean, current one gets its TTL back. */
  read(entryKey: string): Promise<ReadResult>;
  /**
   * Puts a state loaded from Postgres in place of what was there (`replacing`: the stale entry's
   * epoch, or undefined for none). Refused when the epoch or the entry changed meanwhile.
   */
  install(key: DocumentKey, epoch: string, replacing: string | undefined, entry: Omit<CachedEntry, 'epoch'>): Promise<'ok' | 'race'>;
  /** Writes `next` if the entry is still at `baseRevision` of `epoch` and under its ceiling; marks it dirty. */
  write(entryKey: string, epoch: string, baseRevision: number, next: DocumentState): Promise<WriteResult>;
  /** Raises the entry's ceiling (after Postgres raised it). */
  raiseCeiling(entryKey: string, epoch: string, ceiling: number): Promise<void>;
  /** What a flush needs: the entry with the document key it belongs to. */
  dirtyEntry(entryKey: string): Promise<{ key: StoredKey; entry: CachedEntry } | undefined>;
  /**
   * Records that Postgres holds `revision`; a clean entry leaves the dirty set and gets its TTL.
   * Answers false when the entry is gone although it was still listed as dirty.
   */
  markFlushed(entryKey: string, epoch: string, revision: number, ceiling: number): Promise<boolean>;
  /** Dirty entries marked before `olderThanMs` ago (by Redis's clock), at most `limit`. */
  dirtySince(olderThanMs: number, limit: number): Promise<string[]>;
  /**
   * Takes the document's write lock for `ttlMs` (across instances), or answers false when another
   * writer holds it. `release` gives it back only if it is still this holder's.
   */
  tryLock(entryKey: string, token: string, ttlMs: number): Promise<boolean>;
  unlock(entryKey: string, token: string): Promise<void>;
}

/** The document key as stored in an entry, for the flusher. */
export interface StoredKey {
  readonly app: string;
  readonly env: string;
  readonly tenant: string;
  readonly service: string;
  readonly id: string;
}

export interface DocumentCacheOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** Lifetime of a clean entry. */
  readonly ttlMs: number;
}

const FIELDS = ['ep', 'r', 'd', 'x', 'c', 'u', 'ceil', 'f'] as const;

/** KEYS: entry, epoch. ARGV: ttl ms. Returns {status, …FIELDS} or false. */
const READ = `
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'd', 'x', 'c', 'u', 'ceil', 'f')
if not f[1] then return false end
local status = 'hit'
if f[1] ~= redis.call('GET', KEYS[2]) then status = 'stale'
elseif tonumber(f[8]) >= tonumber(f[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {status, unpack(f)}
`;

/** Marks KEYS[1] dirty in KEYS[3] by Redis time, and keeps it from expiring. */
const MARK_DIRTY = `
local function mark_dirty()
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[3], 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), KEYS[1])
  redis.call('PERSIST', KEYS[1])
end
`;

/**
 * KEYS: entry, epoch, dirty. ARGV: epoch, replaced epoch ('' for none), r, d, x, c, u, ceil, f, key, ttl ms.
 */
const INSTALL = `${MARK_DIRTY}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'race' end
if (redis.call('HGET', KEYS[1], 'ep') or '') ~= ARGV[2] then return 'race' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'r', ARGV[3], 'd', ARGV[4], 'x', ARGV[5], 'c', ARGV[6], 'u', ARGV[7], 'ceil', ARGV[8], 'f', ARGV[9], 'k', ARGV[10])
if tonumber(ARGV[9]) < tonumber(ARGV[3]) then mark_dirty() else redis.call('PEXPIRE', KEYS[1], ARGV[11]) end
return 'ok'
`;

/** KEYS: entry, epoch, dirty. ARGV: epoch, base revision, r, d, x, c, u. */
const WRITE = `${MARK_DIRTY}
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'ceil')
if not f[1] then return 'miss' end
if f[1] ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'stale' end
if f[2] ~= ARGV[2] then return 'race' end
if tonumber(ARGV[3]) > tonumber(f[3]) then return 'ceiling' end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'd', ARGV[4], 'x', ARGV[5], 'c', ARGV[6], 'u', ARGV[7])
mark_dirty()
return 'ok'
`;

/** KEYS: entry. ARGV: epoch, ceiling. */
const RAISE = `
local f = redis.call('HMGET', KEYS[1], 'ep', 'ceil')
if f[1] == ARGV[1] and tonumber(f[2]) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'ceil', ARGV[2]) end
return 0
`;

/**
 * KEYS: entry, dirty. ARGV: epoch, flushed revision, ceiling, ttl ms. Returns -1 when the entry is
 * gone but was still listed as dirty (its unflushed changes are lost), 0 or 1 otherwise.
 */
const FLUSHED = `
local f = redis.call('HMGET', KEYS[1], 'ep', 'r', 'f', 'ceil')
if not f[1] then return -redis.call('ZREM', KEYS[2], KEYS[1]) end
if f[1] ~= ARGV[1] then return 0 end
local flushed = math.max(tonumber(f[3]), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'f', flushed, 'ceil', math.max(tonumber(f[4]), tonumber(ARGV[3])))
if tonumber(f[2]) <= flushed then
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
`;

/** KEYS: lock. ARGV: token. Deletes the lock only if it is still the token's. */
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`;

/** KEYS: epoch, run id. ARGV: run id ('' to only ensure), candidate epoch. Returns the epoch. */
const EPOCH = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'NX')
end
return redis.call('GET', KEYS[1])
`;

type Fields = [string, string, string, string, string, string, string, string];
type ReadCommand = (entry: string, epoch: string, ttlMs: number) => Promise<[ReadResult['status'], ...Fields] | null>;
type InstallCommand = (entry: string, epochKey: string, dirty: string, ...argv: (string | number)[]) => Promise<'ok' | 'race'>;
type WriteCommand = (entry: string, epochKey: string, dirty: string, ...argv: (string | number)[]) => Promise<WriteResult>;
type RaiseCommand = (entry: string, epoch: string, ceiling: number) => Promise<number>;
type FlushedCommand = (entry: string, dirty: string, epoch: string, revision: number, ceiling: number, ttlMs: number) => Promise<number>;
type EpochCommand = (epochKey: string, runKey: string, runId: string, candidate: string) => Promise<string>;
type UnlockCommand = (lock: string, token: string) => Promise<number>;

export function createDocumentCache(options: DocumentCacheOptions): DocumentCache {
  const { redis, ttlMs } = options;
  const prefix = `${options.keyPrefix}doc:`;
  const epochKey = `${prefix}epoch`;
  const runKey = `${prefix}epoch-run`;
  const dirtyKey = `${prefix}dirty`;
  const readScript = defineScript<ReadCommand>(redis, 'tributaryDocRead', 2, READ);
  const installScript = defineScript<InstallCommand>(redis, 'tributaryDocInstall', 3, INSTALL);
  const writeScript = defineScript<WriteCommand>(redis, 'tributaryDocWrite', 3, WRITE);
  const raiseScript = defineScript<RaiseCommand>(redis, 'tributaryDocRaise', 1, RAISE);
  const flushedScript = defineScript<FlushedCommand>(redis, 'tributaryDocFlushed', 2, FLUSHED);
  const epochScript = defineScript<EpochCommand>(redis, 'tributaryDocEpoch', 2, EPOCH);
  const unlockScript = defineScript<UnlockCommand>(redis, 'tributaryDocUnlock', 1, UNLOCK);
  const entryKey = (key: DocumentKey) => `${prefix}${keyParts(key).map(encodeURIComponent).join(':')}`;

  return {
    entryKey,

    epoch: () => unavailableOnFailure(epochScript(epochKey, runKey, '', newCacheEpoch())),

    async rotateEpochOnRestart() {
      const info = await unavailableOnFailure(redis.info('server'));
      const runId = /^run_id:(\w+)/m.exec(info)?.[1];
      if (runId) await unavailableOnFailure(epochScript(epochKey, runKey, runId, newCacheEpoch()));
    },

    async read(entryKey) {
      const reply = await unavailableOnFailure(readScript(entryKey, epochKey, ttlMs));
      if (!reply) return { status: 'miss' };
      const [status, ...fields] = reply;
      return { status, entry: entryOf(fields) };
    },

    install: (key, epoch, replacing, entry) =>
      unavailableOnFailure(
        installScript(
          entryKey(key),
          epochKey,
          dirtyKey,
          epoch,
          replacing ?? '',
          ...stateArgs(entry.state),
          entry.ceiling,
          entry.flushed,
          JSON.stringify(keyParts(key)),
          ttlMs,
        ),
      ),

    write: (entryKey, epoch, baseRevision, next) =>
      unavailableOnFailure(writeScript(entryKey, epochKey, dirtyKey, epoch, baseRevision, ...stateArgs(next))),

    async raiseCeiling(entryKey, epoch, ceiling) {
      await unavailableOnFailure(raiseScript(entryKey, epoch, ceiling));
    },

    async dirtyEntry(entryKey) {
      const values = await unavailableOnFailure(redis.hmget(entryKey, ...FIELDS, 'k'));
      const stored = values[FIELDS.length];
      if (values[0] === null || stored === null || stored === undefined) return undefined;
      const [app, env, tenant, service, id] = JSON.parse(stored) as [string, string, string, string, string];
      return { key: { app, env, tenant, service, id }, entry: entryOf(values.slice(0, FIELDS.length) as Fields) };
    },

    async markFlushed(entryKey, epoch, revision, ceiling) {
      return (await unavailableOnFailure(flushedScript(entryKey, dirtyKey, epoch, revision, ceiling, ttlMs))) !== -1;
    },

    async dirtySince(olderThanMs, limit) {
      const [seconds, micros] = await unavailableOnFailure(redis.time());
      const before = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - olderThanMs;
      return unavailableOnFailure(redis.zrangebyscore(dirtyKey, '-inf', before, 'LIMIT', 0, limit));
    },

    async tryLock(entryKey, token, ttlMs) {
      return (await unavailableOnFailure(redis.set(`${entryKey}:lock`, token, 'PX', ttlMs, 'NX'))) === 'OK';
    },

    async unlock(entryKey, token) {
      await unavailableOnFailure(unlockScript(`${entryKey}:lock`, token));
    },
  };
}

function keyParts(key: DocumentKey): [string, string, string, string, string] {
  return [key.scope.app, key.scope.env, key.scope.tenant ?? '', key.service, key.id];
}

function stateArgs(state: DocumentState): (string | number)[] {
  return [state.revision, JSON.stringify(state.data), state.deleted ? 1 : 0, state.createdAt.getTime(), state.updatedAt.getTime()];
}

function entryOf([epoch, revision, data, deleted, createdAt, updatedAt, ceiling, flushed]: Fields): CachedEntry {
  return {
    epoch,
    state: {
      revision: Number(revision),
      data: JSON.parse(data) as JsonObject,
      deleted: deleted === '1',
      createdAt: new Date(Number(createdAt)),
      updatedAt: new Date(Number(updatedAt)),
    },
    ceiling: Number(ceiling),
    flushed: Number(flushed),
  };
}

function newCacheEpoch(): string {
  return randomBytes(9).toString('base64url');
}

async function unavailableOnFailure<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof TributaryError) throw error;
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'The document cache is unavailable right now; retry shortly', { cause: error });
  }
}
