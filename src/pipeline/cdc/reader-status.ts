/**
 * A source's status as the instance that reads its slot gives it (`cdc-source.ts`): read back by
 * this instance (`status()`, `inspect()`), and saved in the platform database for the other
 * instances (`followerStatus` in `source-names.ts` reads it back) and the alert rules. Built here,
 * in one place, so that what is saved — the slot readings with their WAL safety and the other
 * slots' figures (`wal/slot-readings.ts`), and the environments the alerts name — is what the
 * leader reports itself.
 */
import type { ReaderStatusRecord } from './cdc-store.ts';
import { idleStatus, type CdcSourceStatus } from './source-names.ts';
import type { ReplicationNames } from './wal/replication-names.ts';
import type { WalReaderStatus } from './wal/wal-reader.ts';

/** An environment reading the source (through its mappings or its WAL-mode outboxes). */
export interface ReadingEnvironment {
  readonly app: string;
  readonly env: string;
}

/** The status of the reader this instance leads, as `CdcSource.status()` and `inspect()` answer it. */
export function leadingStatus(source: string, names: ReplicationNames, status: WalReaderStatus): CdcSourceStatus {
  return { ...status, source, ...names, leading: true };
}

/** This instance leads no running reader (not elected, or its reader could not start: `lastError` says why). */
export function stoppedStatus(source: string, names: ReplicationNames, lastError: string | null): CdcSourceStatus {
  return { ...idleStatus(source, names), state: 'stopped', lastError };
}

/**
 * The record saved for `status` (`CdcStore.saveStatus`), with no leader: the caller adds the
 * lease's holder, as it knows whether it still holds one.
 */
export function statusRecord(source: string, status: WalReaderStatus, environments: ReadingEnvironment[]): Omit<ReaderStatusRecord, 'updatedAt'> {
  return {
    source,
    state: status.state,
    leader: null,
    lastLsn: status.lastAcknowledgedLsn,
    lagBytes: status.lagBytes,
    retainedWalBytes: status.retainedWalBytes,
    walSafety: status.walSafety,
    otherSlots: status.otherSlots,
    lastError: status.lastError,
    environments,
  };
}

/** Every environment reading the database (its mappings' and WAL-mode outboxes'), once each, in first-seen order. */
export function environmentsOf(readers: readonly { readonly scope: ReadingEnvironment }[]): ReadingEnvironment[] {
  const seen = new Map<string, ReadingEnvironment>();
  for (const { scope } of readers) {
    seen.set(`${scope.app}\u0000${scope.env}`, { app: scope.app, env: scope.env });
  }
  return [...seen.values()];
}
