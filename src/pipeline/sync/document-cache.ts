import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineScript } from '../redis-script.ts';
import { CONFIRM, EPOCH, FLUSHED, INSTALL, RAISE, READ, RENEW_LEASE, SETTLE, TAKE_BACK, UNLOCK, WRITE } from './document-cache-scripts.ts';
import type { Scope } from '../scope.ts';
import type { StoredKey } from './document-store.ts';
import type { DocumentState } from './document-writes.ts';
import { unavailableOnFailure, writeOnFailure } from './document-cache-errors.ts';
import type { DocumentKey, JsonObject } from './documents.ts';
import { unpublishedEventsKey, unpublishedSetKey } from './unpublished-redis.ts';

export { isDocumentCacheUnavailable, isWriteOutcomeUnknown } from './document-cache-errors.ts';

/**
 * The Redis side of the document hot cache: one hash per document, a set of dirty documents, the
 * cache's epoch and its lease generation. Every decision that must be atomic is one Lua script
 * (`document-cache-scripts.ts`).
 *
 * An entry holds the document state plus:
 * - `f`, the revision known to be in Postgres (the entry is dirty while `f < r`). A dirty entry
 *   never expires (PERSIST) and is listed in the dirty set; a clean one expires after the TTL.
 * - `ceil` and `lg`: the highest revision this entry may acknowledge before Postgres has it, and
 *   the lease generation Postgres granted it under (see `document-leases.ts`). Only a ceiling of
 *   the current generation counts: renewing the generation voids every entry's at once.
 * - `sr`…`su`, the state Postgres has, while a write answered only once Postgres has it (sync
 *   durability) waits for it: what readers see meanwhile.
 * - `ep`, the cache epoch it was loaded in. The epoch key is random and created on first use, so a
 *   Redis that lost its data has a new one; a restarted Redis gets a new one too (by run id),
 *   because a restored snapshot may be older than what was acknowledged. An entry of another
 *   epoch is stale: it is reconciled with Postgres before use.
 *
 * A change written to be acknowledged only once Postgres has it (sync durability) also gets a
 * wait mark, a key of its own (`{entry}:wait:{epoch}:{revision}:{updated}`), until its outcome is
 * known (`settle`). Only taking the change back deletes it before then. The document's next
 * write may settle the change on any instance — flush it, or take it back and write another
 * change of the same revision — so the flushed mark alone cannot tell the writer's instance which
 * happened; the wait mark can, on every instance.
 */

export interface CachedEntry {
  readonly state: DocumentState;
  readonly epoch: string;
  readonly ceiling: number;
  /** The lease generation `ceiling` was granted under ('' for none). */
  readonly lease: string;
  /** Revision known to be in Postgres. */
  readonly flushed: number;
  /**
   * The state Postgres has, kept by a write not acknowledged before Postgres has it (sync
   * durability) while the entry is dirty; undefined otherwise. Its revision is `flushed` unless
   * the entry moved on since.
   */
  readonly saved?: DocumentState;
}

/** Which cache, and which of its leases, is current. */
export interface CacheLease {
  readonly epoch: string;
  readonly generation: string;
}

export type ReadResult =
  | { readonly status: 'hit'; readonly entry: CachedEntry }
  | { readonly status: 'stale'; readonly entry: CachedEntry }
  | { readonly status: 'miss' };

/**
 * Outcome of a conditional write: `ok` (`ok-behind`: written, and an earlier change of the document
 * still has its event marked unpublished — async durability), or why it was refused (the caller
 * re-reads and retries; `void`: fenced by `confirm`, which only a write arriving late can meet).
 */
export type WriteResult = 'ok' | 'ok-behind' | 'miss' | 'stale' | 'race' | 'ceiling' | 'void';

/** What `confirm` found of a write whose reply was lost (see CONFIRM in `document-cache-scripts.ts`). */
export type Confirmed = 'landed' | 'absent' | 'unknown';

/** Where a change not acknowledged yet stands (see `settle`). */
export type Settled = 'committed' | 'pending' | 'gone' | 'moved' | 'lost';

export interface DocumentCache {
  /** The Redis key of a document's entry (also its member in the dirty set). */
  entryKey(key: DocumentKey): string;
  /** The current epoch and lease generation, created when Redis has none. */
  lease(): Promise<CacheLease>;
  /** Starts a new epoch when Redis restarted since the last call (its run id changed). */
  rotateEpochOnRestart(): Promise<void>;
  /**
   * Starts a new lease generation, voiding every entry's ceiling; answers the lease it ended
   * (undefined when Redis has no epoch: it lost its data).
   */
  renewLease(): Promise<CacheLease | undefined>;
  /** Reads an entry; a clean, current one gets its TTL back. */
  read(entryKey: string): Promise<ReadResult>;
  /**
   * Reads several entries in one round trip (a transaction, so against one epoch), leaving them as
   * they are (no TTL given back, nothing installed), with the current epoch (undefined when Redis
   * has none). `withData` false: their data (`d`, `sd`) is not read, and is `{}`.
   */
  peek(entryKeys: readonly string[], withData?: boolean): Promise<{ epoch: string | undefined; reads: ReadResult[] }>;
  /** Ids of the documents of a service with entries in the dirty set (changes Postgres lacks, or lacked). */
  dirtyIds(scope: Scope, service: string): Promise<string[]>;
  /**
   * Puts a state loaded from Postgres in place of what was there (`replacing`: the stale entry's
   * epoch, or undefined for none). Refused when the epoch or the entry changed meanwhile. A stale
   * entry's change that Postgres lacks, installed as it is (`reconcile`), keeps its event for the
   * flush (`write`'s `pe`).
   */
  install(key: DocumentKey, epoch: string, replacing: string | undefined, entry: Omit<CachedEntry, 'epoch'>): Promise<'ok' | 'race'>;
  /**
   * Writes `next` if the entry is still at `baseRevision` of `epoch` — and, when `acknowledgedFirst`
   * (async durability: the write is answered before Postgres has it), under a ceiling of the
   * current lease; marks it dirty. `acknowledgedFirst` defaults to false: the change then gets its
   * wait mark. `event` (encoded, `unpublished-events.ts`) is the change's event, marked unpublished
   * in the same script: in async durability among the document's unpublished events in Redis
   * (`unpublished-redis.ts`); otherwise kept in the entry (`pe`) for the flush, which marks it in
   * Postgres with the change. Without `event`, nothing is marked: should the change's publish not
   * happen, its `document` subscribers see the gap and resync, and the `sync.*` topics miss it.
   * @throws `isWriteOutcomeUnknown` (UNAVAILABLE, with the write's token) when Redis may have run it
   * but no reply came: look for it with `confirm` before answering.
   */
  write(entryKey: string, epoch: string, baseRevision: number, next: DocumentState, acknowledgedFirst?: boolean, event?: string): Promise<WriteResult>;
  /** After a `write` whose reply was lost (`token`: its error's): fences it (should it reach Redis only now, it changes nothing), and tells whether it ran. */
  confirm(entryKey: string, epoch: string, baseRevision: number, token: string): Promise<Confirmed>;
  /**
   * Where a change written with its wait mark (`change`, in `epoch`) stands: `pending` while the
   * entry holds it unflushed (its mark kept alive); `committed` once flushed; `gone` once taken
   * back; `moved` when its epoch ended and the entry holds it unflushed; `lost` when the entry is gone
   * or of another epoch without it (only Postgres's row can tell). The mark goes unless `pending`.
   */
  settle(entryKey: string, epoch: string, change: DocumentState): Promise<Settled>;
  /**
   * Puts the entry back to `stored` (the state Postgres has), clean — or deletes it, left in an
   * ended epoch — if it holds exactly `change` unflushed, and deletes the change's wait mark. Answers whether it did.
   */
  takeBack(entryKey: string, epoch: string, change: DocumentState, stored: DocumentState): Promise<boolean>;
  /** Takes the ceiling Postgres granted under `lease`. */
  raiseCeiling(entryKey: string, lease: CacheLease, ceiling: number): Promise<void>;
  /**
   * What a flush needs: the entry with the document key it belongs to, and the event of its change
   * when the flush is to mark it unpublished in Postgres (sync durability: see `write`).
   */
  dirtyEntry(entryKey: string): Promise<{ key: StoredKey; entry: CachedEntry; event: string | undefined } | undefined>;
  /**
   * Records that Postgres holds `revision` (`change`, when known; and granted `grant`, if any); a clean
   * entry leaves the dirty set and gets its TTL; one that disagrees with it is deleted (`FLUSHED`).
   * Answers false when the entry is gone although it was still listed as dirty.
   */
  markFlushed(entryKey: string, epoch: string, revision: number, grant: { ceiling: number; generation: string } | undefined, change?: DocumentState): Promise<boolean>;
  /** Dirty entries marked before `olderThanMs` ago (by Redis's clock), at most `limit`. */
  dirtySince(olderThanMs: number, limit: number): Promise<string[]>;
  /**
   * Takes the document's write lock for `ttlMs` (across instances), or answers false when another
   * writer holds it. `unlock` gives it back only if it is still this holder's.
   */
  tryLock(entryKey: string, token: string, ttlMs: number): Promise<boolean>;
  unlock(entryKey: string, token: string): Promise<void>;
}

export interface DocumentCacheOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** Lifetime of a clean entry, in ms. */
  readonly ttlMs: number;
}

const FIELDS = ['ep', 'r', 'd', 'x', 'c', 'u', 'ceil', 'f', 'lg'] as const;
const SAVED_FIELDS = ['sr', 'sd', 'sx', 'sc', 'su'] as const;
const isData = (field: string) => field === 'd' || field === 'sd';

type Fields = [string, string, string, string, string, string, string, string, string];
/** `sr`, `sd`, `sx`, `sc`, `su`; '' when not set. */
type SavedFields = [string, string, string, string, string];
type Args = (string | number)[];
type ReadCommand = (entry: string, epoch: string, ttlMs: number) => Promise<[ReadResult['status'], ...Fields, ...SavedFields] | null>;
type InstallCommand = (entry: string, epochKey: string, dirty: string, ...argv: Args) => Promise<'ok' | 'race'>;
type WriteCommand = (entry: string, epochKey: string, dirty: string, leaseKey: string, mark: string, events: string, unpublished: string, fence: string, ...argv: Args) => Promise<WriteResult>;
type ConfirmCommand = (entry: string, epochKey: string, fence: string, ...argv: Args) => Promise<Confirmed>;
type RaiseCommand = (entry: string, leaseKey: string, epoch: string, ceiling: number, generation: string) => Promise<number>;
type FlushedCommand = (entry: string, dirty: string, leaseKey: string, ...argv: Args) => Promise<number>;
type EpochCommand = (epochKey: string, runKey: string, leaseKey: string, runId: string, epoch: string, generation: string) => Promise<[string, string]>;
type RenewCommand = (epochKey: string, leaseKey: string, generation: string) => Promise<[string, string] | null>;
type UnlockCommand = (lock: string, token: string) => Promise<number>;
type SettleCommand = (entry: string, epochKey: string, mark: string, ...argv: Args) => Promise<Settled>;
type TakeBackCommand = (entry: string, epochKey: string, dirty: string, mark: string, ...argv: Args) => Promise<number>;

/** Dirty-set entries Redis looks at per ZSCAN call of `dirtyIds` (it sends back only the matching ones). */
const DIRTY_SCAN_COUNT = 5000;

/**
 * Lifetime of a change's wait mark, renewed at each look while the change waits (every 2 s at
 * most while Redis answers). It only ends the marks of instances that died waiting; one that
 * lapses early makes its change count as gone — its event left out, subscribers resync — never
 * as committed.
 */
const WAIT_MARK_TTL_MS = 15 * 60_000;
/** Lifetime of a write's fence (`confirm`): longer than a dropped connection's packets can arrive late (Linux retransmits for up to ~15.4 min at its default tcp_retries2). */
const FENCE_TTL_MS = 30 * 60_000;
/** The fence of one write (`confirm`), by its token. */
const fence = (entryKey: string, token: string) => `${entryKey}:fence:${token}`;

export function createDocumentCache(options: DocumentCacheOptions): DocumentCache {
  const { redis, ttlMs } = options;
  const prefix = `${options.keyPrefix}doc:`;
  const epochKey = `${prefix}epoch`;
  const runKey = `${prefix}epoch-run`;
  const leaseKey = `${prefix}lease`;
  const dirtyKey = `${prefix}dirty`;
  const unpublishedKey = unpublishedSetKey(options.keyPrefix);
  const readScript = defineScript<ReadCommand>(redis, 'tributaryDocRead', 2, READ);
  const installScript = defineScript<InstallCommand>(redis, 'tributaryDocInstall', 3, INSTALL);
  const writeScript = defineScript<WriteCommand>(redis, 'tributaryDocWrite', 8, WRITE);
  const confirmScript = defineScript<ConfirmCommand>(redis, 'tributaryDocConfirm', 3, CONFIRM);
  const raiseScript = defineScript<RaiseCommand>(redis, 'tributaryDocRaise', 2, RAISE);
  const flushedScript = defineScript<FlushedCommand>(redis, 'tributaryDocFlushed', 3, FLUSHED);
  const epochScript = defineScript<EpochCommand>(redis, 'tributaryDocEpoch', 3, EPOCH);
  const renewScript = defineScript<RenewCommand>(redis, 'tributaryDocRenewLease', 2, RENEW_LEASE);
  const unlockScript = defineScript<UnlockCommand>(redis, 'tributaryDocUnlock', 1, UNLOCK);
  const settleScript = defineScript<SettleCommand>(redis, 'tributaryDocSettle', 3, SETTLE);
  const takeBackScript = defineScript<TakeBackCommand>(redis, 'tributaryDocTakeBack', 4, TAKE_BACK);
  const entryKey = (key: DocumentKey) => `${prefix}${keyParts(key).map(encodeURIComponent).join(':')}`;
  const ensureEpoch = async (runId: string): Promise<CacheLease> => {
    const [epoch, generation] = await unavailableOnFailure(epochScript(epochKey, runKey, leaseKey, runId, newRandomId(), newRandomId()));
    return { epoch, generation };
  };

  return {
    entryKey,

    lease: () => ensureEpoch(''),

    async rotateEpochOnRestart() {
      const info = await unavailableOnFailure(redis.info('server'));
      const runId = /^run_id:(\w+)/m.exec(info)?.[1];
      if (runId) await ensureEpoch(runId);
    },

    async renewLease() {
      const ended = await unavailableOnFailure(renewScript(epochKey, leaseKey, newRandomId()));
      return ended ? { epoch: ended[0], generation: ended[1] } : undefined;
    },

    async read(entryKey) {
      const reply = await unavailableOnFailure(readScript(entryKey, epochKey, ttlMs));
      if (!reply) return { status: 'miss' };
      const [status, ...fields] = reply;
      return { status, entry: entryOf(fields.slice(0, FIELDS.length) as Fields, fields.slice(FIELDS.length) as SavedFields) };
    },

    peek: (entryKeys, withData = true) =>
      unavailableOnFailure(
        (async () => {
          const transaction = redis.multi().get(epochKey);
          for (const key of entryKeys) transaction.hmget(key, ...[...FIELDS, ...SAVED_FIELDS].filter((field) => withData || !isData(field)));
          const replies = await transaction.exec();
          if (!replies) throw new Error('document cache read aborted');
          const values = replies.map(([error, value]) => {
            if (error) throw error;
            return value;
          });
          const epoch = (values[0] as string | null | undefined) ?? undefined;
          const reads = entryKeys.map((_key, index): ReadResult => {
            const read = ((values[index + 1] ?? []) as (string | null)[]).map((value) => value ?? '');
            const fields = withData ? read : [...FIELDS, ...SAVED_FIELDS].map((field) => (isData(field) ? '{}' : read.shift()!));
            if (fields[0] === undefined || fields[0] === '') return { status: 'miss' };
            const entry = entryOf(fields.slice(0, FIELDS.length) as Fields, fields.slice(FIELDS.length) as SavedFields);
            return { status: fields[0] === epoch ? 'hit' : 'stale', entry };
          });
          return { epoch, reads };
        })(),
      ),

    async dirtyIds(scope, service) {
      // The entry key of the service's id '': every entry key of the service starts with it. The
      // dirty set holds every app's, env's, tenant's and service's: Redis matches the prefix, so
      // only this service's members are sent (the set is scored by time, so no lexical range).
      // ZSCAN may repeat a member; one present throughout the scan is always returned, and one
      // flushed meanwhile is in Postgres, which the listing reads after.
      const start = entryKey({ scope, service, id: '' });
      const pattern = `${start.replace(/[*?[\]\\]/g, '\\$&')}*`;
      const ids = new Set<string>();
      let cursor = '0';
      do {
        const [next, flat] = await unavailableOnFailure(redis.zscan(dirtyKey, cursor, 'MATCH', pattern, 'COUNT', DIRTY_SCAN_COUNT));
        // Members and scores alternate.
        for (let index = 0; index < flat.length; index += 2) {
          const member = flat[index]!;
          if (member.startsWith(start)) ids.add(decodeURIComponent(member.slice(start.length)));
        }
        cursor = next;
      } while (cursor !== '0');
      return [...ids];
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
          entry.lease,
        ),
      ),

    write: (entryKey, epoch, baseRevision, next, acknowledgedFirst = false, event = '') => {
      const token = newRandomId();
      const keys = [entryKey, epochKey, dirtyKey, leaseKey, waitMark(entryKey, epoch, next), unpublishedEventsKey(entryKey), unpublishedKey, fence(entryKey, token)] as const;
      return writeOnFailure(writeScript(...keys, epoch, baseRevision, ...stateArgs(next), acknowledgedFirst ? 1 : 0, WAIT_MARK_TTL_MS, event, token), token);
    },

    confirm: (entryKey, epoch, baseRevision, token) =>
      unavailableOnFailure(confirmScript(entryKey, epochKey, fence(entryKey, token), epoch, baseRevision, token, FENCE_TTL_MS)),

    settle: (entryKey, epoch, change) =>
      unavailableOnFailure(settleScript(entryKey, epochKey, waitMark(entryKey, epoch, change), epoch, change.revision, change.updatedAt.getTime(), WAIT_MARK_TTL_MS)),

    async takeBack(entryKey, epoch, change, stored) {
      const mark = waitMark(entryKey, epoch, change);
      const argv = [change.revision, change.updatedAt.getTime(), ...stateArgs(stored), ttlMs];
      return (await unavailableOnFailure(takeBackScript(entryKey, epochKey, dirtyKey, mark, ...argv))) === 1;
    },

    async raiseCeiling(entryKey, lease, ceiling) {
      await unavailableOnFailure(raiseScript(entryKey, leaseKey, lease.epoch, ceiling, lease.generation));
    },

    async dirtyEntry(entryKey) {
      const values = await unavailableOnFailure(redis.hmget(entryKey, ...FIELDS, 'k', 'pe'));
      const stored = values[FIELDS.length];
      if (values[0] === null || stored === null || stored === undefined) return undefined;
      const [app, env, tenant, service, id] = JSON.parse(stored) as [string, string, string, string, string];
      const entry = entryOf(values.slice(0, FIELDS.length).map((value) => value ?? '') as Fields);
      return { key: { app, env, tenant, service, id }, entry, event: values[FIELDS.length + 1] || undefined };
    },

    async markFlushed(entryKey, epoch, revision, grant, change) {
      const updatedAt = change?.updatedAt.getTime() ?? '';
      return (await unavailableOnFailure(flushedScript(entryKey, dirtyKey, leaseKey, epoch, revision, grant?.ceiling ?? 0, grant?.generation ?? '', ttlMs, updatedAt))) !== -1;
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

/** The wait mark of one change of an entry (see `settle`): its epoch, revision and time. */
function waitMark(entryKey: string, epoch: string, change: DocumentState): string {
  return `${entryKey}:wait:${epoch}:${change.revision}:${change.updatedAt.getTime()}`;
}

function stateArgs(state: DocumentState): (string | number)[] {
  return [state.revision, JSON.stringify(state.data), state.deleted ? 1 : 0, state.createdAt.getTime(), state.updatedAt.getTime()];
}

function entryOf([epoch, revision, data, deleted, createdAt, updatedAt, ceiling, flushed, lease]: Fields, saved?: SavedFields): CachedEntry {
  return {
    epoch,
    state: parseState(revision, data, deleted, createdAt, updatedAt),
    ceiling: Number(ceiling),
    lease,
    flushed: Number(flushed),
    ...(saved && saved[0] !== '' && { saved: parseState(...saved) }),
  };
}

function parseState(revision: string, data: string, deleted: string, createdAt: string, updatedAt: string): DocumentState {
  return {
    revision: Number(revision),
    data: JSON.parse(data) as JsonObject,
    deleted: deleted === '1',
    createdAt: new Date(Number(createdAt)),
    updatedAt: new Date(Number(updatedAt)),
  };
}

function newRandomId(): string {
  return randomBytes(9).toString('base64url');
}
