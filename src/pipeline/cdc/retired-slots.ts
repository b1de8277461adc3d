/**
 * Replication slots no environment reads any more (the database's last environment and WAL-mode
 * outbox went, or its slot name changed), dropped once their reader stopped: an inactive logical
 * slot pins `restart_lsn`, so the source database would keep all WAL from then on, and with no
 * reader left no `cdc.retained_wal` alert would say so.
 *
 * They are noted in the platform database (`RetiredSlotNote`, migration 0025), not in memory: the
 * configuration change that retires a slot notes it in its own statement (`cdc-store.ts`), and a
 * reload that stops a reader whose slot its configuration no longer names notes it too (an outbox
 * removed). So an instance that stops before the drop succeeded, or that did not lead the reader
 * when the change was loaded, leaves the note to another (or to its own next start). Who drops:
 * the instance leading the database's reader when there is one (a slot renamed), else any
 * instance (an inactive slot no configuration claims is safe to drop; an active one is retried).
 *
 * A drop is retried at each call while the slot is still active (another instance, not yet
 * reloaded, may still read it) or while the database cannot be reached, for `RETRY_UNREACHABLE_MS`
 * at most (counted by each instance from when it first failed). A slot that an environment claims
 * again before it is dropped is kept. Other failures (a role that may not drop slots) are logged
 * with the slot's name, to drop by hand, and not retried.
 *
 * The URL is checked to still reach the slot's database (its identity, `replication-names.ts`)
 * before anything is dropped: a source moved behind the same URL (a DNS switch-over, a restore)
 * may have a slot of the same name there, read by the new database's reader. Such a note is
 * settled with a warning naming the slot to drop by hand on the old database.
 */
import { isConnectionFailure } from '../../db/connection-failure.ts';
import { SqlState, sqlStateOf } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { sourceIdOf, type CdcSource } from './cdc-source.ts';
import type { CdcSourceRecord, CdcStore, KnownDatabase, RetiredSlotNote } from './cdc-store.ts';
import type { SourceEndpoints } from './source-endpoints.ts';
import { IDENTITY_WAIT_MS } from './source-groups.ts';
import { defaultReplicationNames, identifyDatabase, identityKey, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';
import type { SourceConnections } from './wal/source-connections.ts';

/** A noted slot, its database and name resolved. */
export interface RetiredSlot {
  /** The database's identity key (`identityKey`): the reader the slot belonged to. */
  readonly database: string;
  /** The database's source id (its reader status is kept under it). */
  readonly source: string;
  /** A URL that reached the database (checked to reach it still before the drop). */
  readonly url: string;
  readonly slotName: string;
}

/**
 * Who may settle a noted slot, as the last complete load of the configuration says: `claimed` (the
 * database's reader uses it again: kept), `leader` (this instance leads the database's reader, on
 * another slot), `follower` (another instance does: it drops the slot), `none` (no environment or
 * outbox reads the database: any instance drops the slot, and its reader status goes with it, so
 * that a source set on it again later starts a new slot as new, not as a lost one, `cdc.slot_lost`).
 */
export type SlotOwner = 'claimed' | 'leader' | 'follower' | 'none';

export interface RetiredSlots {
  /** Notes a slot a reload stopped reading that its configuration no longer names. Never rejects. */
  retire(slot: { readonly database: string; readonly url: string; readonly slotName: string }): Promise<void>;
  /** The noted slots. Read them before the configuration `drop` judges them by: a note is written with the change that retires it. */
  list(): Promise<RetiredSlotNote[]>;
  /** The URLs the pending drops connect with (their connections must stay open). */
  urls(): string[];
  /**
   * Settles every note `owner` lets this instance settle: drops the slot, or deletes the note of a
   * slot claimed again. Resolves with whether any note was settled, never rejects.
   */
  drop(notes: readonly RetiredSlotNote[], owner: (slot: RetiredSlot) => SlotOwner): Promise<boolean>;
}

export interface RetiredSlotsOptions {
  /** The connections of a source URL (the CDC service's, made on first use). */
  readonly connectionsOf: (url: string) => SourceConnections;
  /** The identity key of the database `url` reaches, if it is known or learned shortly; else undefined. */
  readonly identityOf: (url: string) => Promise<string | undefined>;
  readonly store: Pick<CdcStore, 'forgetReader' | 'noteRetiredSlot' | 'listRetiredSlots' | 'pinRetiredSlot' | 'settleRetiredSlots'>;
  readonly logger: Logger;
  /** The slot name a note without one means: the deployment's derived name (`deployment-slots.ts`). @default the name of before deployments had their own */
  readonly derivedNames?: (identity: DatabaseIdentity) => ReplicationNames;
  /** How long a drop is retried while the database cannot be reached, in ms. @default 1 hour */
  readonly retryUnreachableMs?: number;
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number;
}

const RETRY_UNREACHABLE_MS = 3_600_000;

/** The identity an `identityKey` was made of (`{system identifier}/{database name}`: the identifier has no `/`). */
export function identityOfKey(key: string): DatabaseIdentity {
  const cut = key.indexOf('/');
  return { systemIdentifier: key.slice(0, cut), database: key.slice(cut + 1) };
}

/** Who settles `slotName`, given the database's reader as the last complete load left it (`elected`: readers have a leader election). */
export function slotOwner(reader: { readonly names: ReplicationNames; readonly source: Pick<CdcSource, 'status'> } | undefined, slotName: string, elected: boolean): SlotOwner {
  if (!reader) return 'none';
  if (reader.names.slotName === slotName) return 'claimed';
  return !elected || reader.source.status().leading ? 'leader' : 'follower';
}

/** The identity key of the database `url` reaches, if known or learned shortly; else undefined. */
export async function knownDatabase(endpoints: Pick<SourceEndpoints, 'knownIdentity'>, url: string): Promise<string | undefined> {
  const identity = await endpoints.knownIdentity(url, IDENTITY_WAIT_MS);
  return identity && identityKey(identity);
}

/** The database an environment's saved source reaches, as far as known: noted with the slot that a change of it retires. */
export async function previousDatabase(endpoints: Pick<SourceEndpoints, 'knownIdentity'>, row: CdcSourceRecord | undefined): Promise<KnownDatabase | undefined> {
  const database = row && (await knownDatabase(endpoints, row.databaseUrl).catch(() => undefined));
  return row && database !== undefined ? { url: row.databaseUrl, database } : undefined;
}

export function createRetiredSlots(options: RetiredSlotsOptions): RetiredSlots {
  const { logger, store } = options;
  const now = options.now ?? Date.now;
  const retryUnreachableMs = options.retryUnreachableMs ?? RETRY_UNREACHABLE_MS;
  const derivedNames = options.derivedNames ?? ((identity: DatabaseIdentity) => defaultReplicationNames(identity));
  /** What this instance learned of each pending slot, by database and slot name. */
  const pending = new Map<string, { unreachableSince: number | undefined; toldActive: boolean; forgotten: boolean }>();
  /** Notes saved without their database, by id: since when this instance fails to reach their URL. */
  const unreachedSince = new Map<string, number>();
  let pendingUrls: string[] = [];

  /**
   * Drops the slot (of this database only: slot names are per cluster). Resolves with 'dropped' once
   * it is gone, or with the identity the URL reaches instead of the slot's database (nothing dropped).
   */
  const dropOne = async (slot: RetiredSlot): Promise<{ dropped: true } | { dropped: false; reached: string }> =>
    options.connectionsOf(slot.url).withClient(async (client) => {
      const reached = identityKey(await identifyDatabase(client));
      if (reached !== slot.database) return { dropped: false, reached };
      const exists = async () =>
        (await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()', [slot.slotName])).rowCount !== 0;
      try {
        await client.query(
          'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()',
          [slot.slotName],
        );
        return { dropped: true };
      } catch (error) {
        // Dropped meanwhile by another instance ("does not exist"): done all the same.
        if (sqlStateOf(error) !== SqlState.OBJECT_IN_USE && !isConnectionFailure(error) && !(await exists().catch(() => true))) return { dropped: true };
        throw error;
      }
    });

  /**
   * A note whose URL this instance has not reached for `retryUnreachableMs` (counted from its first
   * try here) is given up, with a warning naming what to drop by hand, like a drop that cannot reach
   * its database: retried for ever, every instance would keep connecting with what may be revoked
   * credentials. The URL's host and database only: it may hold a password.
   */
  const givenUp = (note: RetiredSlotNote): boolean => {
    const since = unreachedSince.get(note.id) ?? now();
    unreachedSince.set(note.id, since);
    if (now() - since < retryUnreachableMs) return false;
    unreachedSince.delete(note.id);
    const { host, pathname } = new URL(note.databaseUrl);
    logger.warn(
      { host, database: decodeURIComponent(pathname.slice(1)), slot: note.slotName ?? 'tributary_… (the name derived from the database and this deployment)' },
      'a retired replication slot could not be dropped: its database was not reached for an hour; drop it by hand there (SELECT pg_drop_replication_slot(…)), or it retains WAL',
    );
    return true;
  };

  /** The notes by slot (a slot may be noted more than once: by its change and by each instance's reload). */
  const resolve = async (notes: readonly RetiredSlotNote[]) => {
    const slots = new Map<string, { slot: RetiredSlot; ids: string[] }>();
    const unresolved: string[] = [];
    const settledIds: string[] = [];
    for (const note of notes) {
      let database = note.database;
      if (database === null) {
        // Noted without its identity: the first instance to reach the URL records the one it finds
        // (the one stored is used, should another instance have recorded another meanwhile).
        const reached = await options.identityOf(note.databaseUrl).catch(() => undefined);
        database = reached === undefined ? null : ((await store.pinRetiredSlot(note.id, reached).catch(() => undefined)) ?? null);
        if (database === null) {
          if (givenUp(note)) settledIds.push(note.id);
          else unresolved.push(note.databaseUrl);
          continue;
        }
      }
      unreachedSince.delete(note.id);
      const identity = identityOfKey(database);
      const slotName = note.slotName ?? derivedNames(identity).slotName;
      const key = `${database}\u0000${slotName}`;
      const entry = slots.get(key) ?? { slot: { database, source: sourceIdOf(identity), url: note.databaseUrl, slotName }, ids: [] };
      entry.ids.push(note.id);
      slots.set(key, entry);
    }
    return { slots, unresolved, settledIds };
  };

  /** Deletes the notes of a settled slot; false (told, and tried again at the next call) when the platform database fails. */
  const settle = (slot: RetiredSlot, ids: readonly string[]) =>
    store.settleRetiredSlots(ids).then(
      () => true,
      (error: unknown) => {
        logger.warn({ err: error, source: slot.source, slot: slot.slotName }, 'the note of a settled replication slot could not be deleted; retrying');
        return false;
      },
    );

  /** Tries the drop; resolves with whether the slot is settled (dropped, or given up with a warning) rather than to retry. */
  const dropped = async (key: string, slot: RetiredSlot, verdict: 'leader' | 'none'): Promise<boolean> => {
    const entry = pending.get(key) ?? { unreachableSince: undefined, toldActive: false, forgotten: false };
    pending.set(key, entry);
    try {
      // The status first: a reader starting on the slot meanwhile then finds it, not a lost one.
      if (verdict === 'none' && !entry.forgotten) {
        await store.forgetReader(slot.source).catch((error: unknown) => logger.warn({ err: error, source: slot.source }, 'the reader status could not be cleared'));
      }
      entry.forgotten = true;
      const outcome = await dropOne(slot);
      if (outcome.dropped) {
        logger.info({ source: slot.source, slot: slot.slotName }, 'dropped the replication slot no environment reads any more');
      } else {
        logger.warn(
          { source: slot.source, slot: slot.slotName, database: slot.database, reached: outcome.reached },
          `the URL of retired replication slot ${slot.slotName} now reaches another database, so it was not dropped: ` +
            'drop it by hand on its old database (SELECT pg_drop_replication_slot(…)), or it retains WAL there',
        );
      }
      return true;
    } catch (error) {
      if (sqlStateOf(error) === SqlState.OBJECT_IN_USE) {
        // Still streamed (the walsender of the reader just stopped has not exited yet, or another instance reads it).
        if (!entry.toldActive) logger.info({ source: slot.source, slot: slot.slotName }, 'the replication slot to drop is still active; retrying');
        entry.toldActive = true;
        return false;
      }
      if (isConnectionFailure(error)) {
        entry.unreachableSince ??= now();
        if (now() - entry.unreachableSince < retryUnreachableMs) return false;
      }
      logger.warn(
        { err: error, source: slot.source, slot: slot.slotName },
        'the replication slot no environment reads could not be dropped: drop it by hand (SELECT pg_drop_replication_slot(…)), or it retains WAL',
      );
      return true;
    }
  };

  return {
    retire: (slot) =>
      store
        .noteRetiredSlot({ database: slot.database, databaseUrl: slot.url, slotName: slot.slotName })
        .catch((error: unknown) => logger.warn({ err: error, slot: slot.slotName }, 'the replication slot no environment reads could not be noted for its drop')),

    list: () => store.listRetiredSlots(),

    urls: () => pendingUrls,

    async drop(notes, owner) {
      let settled = false;
      const { slots, unresolved, settledIds } = await resolve(notes);
      for (const key of pending.keys()) if (!slots.has(key)) pending.delete(key);
      const left: string[] = [...unresolved];
      if (settledIds.length > 0 && (await store.settleRetiredSlots(settledIds).then(() => true, () => false))) settled = true;
      for (const [key, { slot, ids }] of slots) {
        const verdict = owner(slot);
        if (verdict === 'follower' || (verdict !== 'claimed' && !(await dropped(key, slot, verdict)))) {
          left.push(slot.url);
          continue;
        }
        // Settled: claimed again, dropped, or given up (told): the notes go, or every instance would retry them for ever.
        if (await settle(slot, ids)) {
          pending.delete(key);
          settled = true;
        } else {
          left.push(slot.url);
        }
      }
      pendingUrls = left;
      return settled;
    },
  };
}
