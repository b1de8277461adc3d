/**
 * What the WAL reader says of its slot — the WAL written after its confirmed position, the WAL it
 * retains, how far it is from `max_slot_wal_keep_size`, the database's other Tributary slots — read over a pooled connection at each
 * `inspect()`, and for how long such a reading may be reported.
 *
 * A figure is reported only as the source said it lately, never as the last value it had: the
 * gauges, the dashboard, the status and the `cdc.lag` alert all read it, and a figure frozen
 * while the WAL piles up behind the slot reads as all is well. So:
 * - a reading the source does not answer ends after `timeoutMs`, and its connection is discarded
 *   with every other pooled one made before (a path that died without closing — a dead NAT entry,
 *   a frozen host — swallows whatever is sent on them, and no server-side timeout ends that);
 * - a reading that failed leaves the figures unknown until one works;
 * - a reading older than `maxAgeMs` (the readings stopped) is not reported.
 */
import { within } from '../../coordination/within.ts';
import { readOtherSlots, type OtherSlots } from './other-slots.ts';
import { readSlotUsage } from './replication-setup.ts';
import type { SourceConnections } from './source-connections.ts';

/**
 * Longest a reading of the slot is waited for, in ms. Postgres answers it from shared memory in
 * milliseconds, and the readings come every 5 s (`cdc-service.ts`): one not answered by then is
 * told as unknown before the next is due.
 */
export const READING_TIMEOUT_MS = 3000;

/** A reading older than this is not reported, in ms: three readings in a row did not come. */
export const FIGURES_MAX_AGE_MS = 15_000;

/**
 * How far the slot is from being invalidated by the source's `max_slot_wal_keep_size` (its
 * `pg_replication_slots` row): past that limit (or `wal_keep_size`, when larger) the next checkpoint
 * removes the WAL it still needs, and the changes in it are missed. The `cdc.slot_at_risk` alert.
 * On Postgres 12 (none of these) all three are null — stored, that reads as not measured
 * (`walSafetyOf`, `cdc-store.ts`) — and the slot's other figures are read all the same.
 */
export interface SlotWalSafety {
  /** `wal_status`: `reserved`, `extended`, `unreserved` (the next checkpoint invalidates it) or `lost`; null when Postgres gives none (Postgres 12 has no such column). */
  readonly walStatus: string | null;
  /** `safe_wal_size`: WAL that can still be written before the slot retains more than `maxSlotWalKeepBytes`, in bytes (negative once `unreserved`); null without a limit, once lost, or on Postgres 12. */
  readonly safeWalBytes: number | null;
  /**
   * The WAL the server keeps for the slot at most, in bytes — what `safe_wal_size` counts down from:
   * `max_slot_wal_keep_size`, or `wal_keep_size` when larger (Postgres keeps that much anyway);
   * null when `max_slot_wal_keep_size` is `-1` (no limit), or on Postgres 12 (no such setting).
   */
  readonly maxSlotWalKeepBytes: number | null;
}

export interface SlotFigures {
  /** `pg_current_wal_lsn() - confirmed_flush_lsn`, in bytes; null when unknown (or no such slot). */
  readonly lagBytes: number | null;
  /** `pg_current_wal_lsn() - restart_lsn`, in bytes; null when unknown (or no such slot). */
  readonly retainedWalBytes: number | null;
  /** Its `wal_status` and `safe_wal_size`, read with the above; null when unknown (or no such slot). */
  readonly walSafety: SlotWalSafety | null;
  /** The database's other Tributary slots (`slotFamily`); null when unknown, or without `slotFamily`. */
  readonly otherSlots: OtherSlots | null;
}

export interface SlotReadings {
  /** Reads the figures now. Rejects when the source fails or does not answer within the bound: the figures are unknown until a reading works. */
  read(): Promise<void>;
  /** The last reading's figures while it is recent and worked, else unknown (nulls). */
  current(): SlotFigures;
  /** Why the last reading failed; null once one worked. */
  readonly error: string | null;
}

export interface SlotReadingsOptions {
  readonly connections: SourceConnections;
  readonly slotName: string;
  /** The database's base slot name: its other slots so named are read too (`other-slots.ts`). @default not read */
  readonly slotFamily?: string;
  /** Longest a reading is waited for, in ms. @default READING_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Age past which a reading is not reported, in ms. @default FIGURES_MAX_AGE_MS */
  readonly maxAgeMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

const UNKNOWN: SlotFigures = { lagBytes: null, retainedWalBytes: null, walSafety: null, otherSlots: null };

export function createSlotReadings(options: SlotReadingsOptions): SlotReadings {
  const { connections, slotName, slotFamily } = options;
  const timeoutMs = options.timeoutMs ?? READING_TIMEOUT_MS;
  const maxAgeMs = options.maxAgeMs ?? FIGURES_MAX_AGE_MS;
  const now = options.now ?? Date.now;
  const unanswered = `the source database did not answer the reading of the slot within ${timeoutMs} ms`;
  let last: { readonly figures: SlotFigures; readonly at: number } | undefined;
  let error: string | null = null;
  return {
    async read() {
      const startedAt = now();
      try {
        // Past its time the reading fails, and withClient discards the connection it held (pg
        // destroys the socket of a client ended with a statement in flight).
        const figures = await connections.withClient((client) =>
          within(
            (async (): Promise<SlotFigures> => {
              const usage = await readSlotUsage(client, slotName);
              const otherSlots = slotFamily === undefined ? null : await readOtherSlots(client, slotFamily, slotName);
              const walSafety = usage && { walStatus: usage.walStatus, safeWalBytes: usage.safeWalBytes, maxSlotWalKeepBytes: usage.maxSlotWalKeepBytes };
              return { lagBytes: usage?.lagBytes ?? null, retainedWalBytes: usage?.retainedWalBytes ?? null, walSafety: walSafety ?? null, otherSlots };
            })(),
            timeoutMs,
            unanswered,
          ),
        );
        last = { figures, at: startedAt };
        error = null;
      } catch (cause) {
        last = undefined;
        const message = cause instanceof Error ? cause.message : String(cause);
        error = `the slot could not be measured: ${message}`;
        // The other pooled connections went the same way most likely: the next reading opens a new one.
        if (message === unanswered) connections.retirePooledConnections();
        throw cause;
      }
    },
    current: () => (last !== undefined && now() - last.at <= maxAgeMs ? last.figures : UNKNOWN),
    get error() {
      return error;
    },
  };
}
