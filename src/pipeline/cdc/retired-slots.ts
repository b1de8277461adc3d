/**
 * Replication slots no environment reads any more (the database's last environment and WAL-mode
 * outbox went, or its slot name changed), dropped by the instance that led their reader, after it
 * stopped: an inactive logical slot pins `restart_lsn`, so the source database would keep all WAL
 * from then on, and with no reader left no `cdc.retained_wal` alert would say so.
 *
 * A drop is retried at each call while the slot is still active (another instance, not yet
 * reloaded, may have taken the lead and read it; it drops the slot in turn once it stops, having
 * led it) or while the database cannot be reached, for `RETRY_UNREACHABLE_MS` at most. A slot that
 * an environment claims again before it is dropped is kept. Other failures (a role that may not
 * drop slots) are logged with the slot's name, to drop by hand, and not retried.
 *
 * The URL is checked to still reach the slot's database (its identity, `replication-names.ts`)
 * before anything is dropped: a source moved behind the same URL (a DNS switch-over, a restore)
 * may have a slot of the same name there, read by the new database's reader. Such a note is
 * settled with a warning naming the slot to drop by hand on the old database.
 */
import { isConnectionFailure } from '../../db/connection-failure.ts';
import { SqlState, sqlStateOf } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { CdcStore } from './cdc-store.ts';
import { identifyDatabase, identityKey } from './wal/replication-names.ts';
import type { SourceConnections } from './wal/source-connections.ts';

/** A slot this instance stopped reading that no environment uses (as the last complete reload saw). */
export interface RetiredSlot {
  /** The database's identity key (`identityKey`): the reader the slot belonged to. */
  readonly database: string;
  /** The database's source id (its reader status is kept under it). */
  readonly source: string;
  /** A URL that reached the database (checked to reach it still before the drop). */
  readonly url: string;
  readonly slotName: string;
  /**
   * No environment reads the database any more: its reader status goes with the slot, so that a
   * source set on it again later starts a new slot as new, not as a lost one (`cdc.slot_lost`).
   */
  readonly forgetReader: boolean;
}

export interface RetiredSlots {
  /** Notes a slot to drop (replacing an earlier note of the same slot). */
  retire(slot: RetiredSlot): void;
  /** The URLs the pending drops connect with (their connections must stay open). */
  urls(): string[];
  /**
   * Drops every noted slot that `claimed` does not say is read again (those are forgotten).
   * Resolves with whether any note was settled (dropped, claimed or given up), never rejects.
   */
  drop(claimed: (slot: RetiredSlot) => boolean): Promise<boolean>;
}

export interface RetiredSlotsOptions {
  /** The connections of a source URL (the CDC service's, made on first use). */
  readonly connectionsOf: (url: string) => SourceConnections;
  readonly store: Pick<CdcStore, 'forgetReader'>;
  readonly logger: Logger;
  /** How long a drop is retried while the database cannot be reached, in ms. @default 1 hour */
  readonly retryUnreachableMs?: number;
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number;
}

const RETRY_UNREACHABLE_MS = 3_600_000;

export function createRetiredSlots(options: RetiredSlotsOptions): RetiredSlots {
  const { logger } = options;
  const now = options.now ?? Date.now;
  const retryUnreachableMs = options.retryUnreachableMs ?? RETRY_UNREACHABLE_MS;
  /** By database and slot name, with when the database was first found unreachable. */
  const pending = new Map<string, { slot: RetiredSlot; unreachableSince: number | undefined; toldActive: boolean; forgotten: boolean }>();
  const keyOf = (slot: RetiredSlot) => `${slot.database}\u0000${slot.slotName}`;

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

  return {
    retire(slot) {
      pending.set(keyOf(slot), { slot, unreachableSince: undefined, toldActive: false, forgotten: false });
    },

    urls: () => [...pending.values()].map(({ slot }) => slot.url),

    async drop(claimed) {
      const before = pending.size;
      for (const [key, entry] of pending) {
        const { slot } = entry;
        if (claimed(slot)) {
          pending.delete(key);
          continue;
        }
        try {
          // The status first: a reader starting on the slot meanwhile then finds it, not a lost one.
          if (slot.forgetReader && !entry.forgotten) {
            await options.store.forgetReader(slot.source).catch((error: unknown) => logger.warn({ err: error, source: slot.source }, 'the reader status could not be cleared'));
          }
          entry.forgotten = true;
          const outcome = await dropOne(slot);
          pending.delete(key);
          if (outcome.dropped) {
            logger.info({ source: slot.source, slot: slot.slotName }, 'dropped the replication slot no environment reads any more');
          } else {
            logger.warn(
              { source: slot.source, slot: slot.slotName, database: slot.database, reached: outcome.reached },
              `the URL of retired replication slot ${slot.slotName} now reaches another database, so it was not dropped: ` +
                'drop it by hand on its old database (SELECT pg_drop_replication_slot(…)), or it retains WAL there',
            );
          }
        } catch (error) {
          if (sqlStateOf(error) === SqlState.OBJECT_IN_USE) {
            // Still streamed (the walsender of the reader just stopped has not exited yet, or another instance reads it).
            if (!entry.toldActive) logger.info({ source: slot.source, slot: slot.slotName }, 'the replication slot to drop is still active; retrying');
            entry.toldActive = true;
            continue;
          }
          if (isConnectionFailure(error)) {
            entry.unreachableSince ??= now();
            if (now() - entry.unreachableSince < retryUnreachableMs) continue;
          }
          pending.delete(key);
          logger.warn(
            { err: error, source: slot.source, slot: slot.slotName },
            'the replication slot no environment reads could not be dropped: drop it by hand (SELECT pg_drop_replication_slot(…)), or it retains WAL',
          );
        }
      }
      return pending.size < before;
    },
  };
}
