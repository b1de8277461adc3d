/**
 * What the CDC service says about a source database before (or without) a reader: the slot and
 * publication names its environments agree on, and the status of a reader this instance does not lead.
 */
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { CdcSourceRecord, ReaderStatusRecord } from './cdc-store.ts';
import { defaultReplicationNames, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';
import { isValidPublicationName, isValidSlotName } from './wal/replication-setup.ts';
import type { WalReaderStatus } from './wal/wal-reader.ts';

/** A source's reader status as an instance sees it. */
export interface CdcSourceStatus extends WalReaderStatus {
  readonly source: string;
  /** The replication slot on the source database; null while the database cannot be reached (names are derived from it). */
  readonly slotName: string | null;
  /** The publication on the source database; null like `slotName`. */
  readonly publicationName: string | null;
  /** This instance reads the slot. */
  readonly leading: boolean;
}

/** The names a source sets, null for those it leaves derived. @throws BAD_USER_INPUT (with `details.field`) for an invalid name. */
export function checkedNames(names: { readonly slotName?: string | null; readonly publicationName?: string | null }): {
  slotName: string | null;
  publicationName: string | null;
} {
  const wanted = { slotName: names.slotName ?? null, publicationName: names.publicationName ?? null };
  if (wanted.slotName !== null && !isValidSlotName(wanted.slotName)) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'slotName must be 1–63 lower-case letters, digits and underscores', { details: { field: 'slotName' } });
  }
  if (wanted.publicationName !== null && !isValidPublicationName(wanted.publicationName)) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'publicationName must be a lower-case identifier (letters, digits, underscores; not starting with a digit)', {
      details: { field: 'publicationName' },
    });
  }
  return wanted;
}

/** A database's names: those its environments set (they agree, `setSource` sees to it), else derived. */
export function namesOf(identity: DatabaseIdentity, rows: readonly CdcSourceRecord[]): ReplicationNames {
  const derived = defaultReplicationNames(identity);
  return {
    slotName: rows.find((row) => row.slotName !== null)?.slotName ?? derived.slotName,
    publicationName: rows.find((row) => row.publicationName !== null)?.publicationName ?? derived.publicationName,
  };
}

export function sameNames(a: ReplicationNames, b: ReplicationNames): boolean {
  return a.slotName === b.slotName && a.publicationName === b.publicationName;
}

export function idleStatus(source: string, names: { slotName: string | null; publicationName: string | null }): CdcSourceStatus {
  return {
    source,
    slotName: names.slotName,
    publicationName: names.publicationName,
    leading: false,
    state: 'starting',
    lastReceivedLsn: null,
    lastAcknowledgedLsn: null,
    lagBytes: null,
    retainedWalBytes: null,
    lastError: null,
  };
}

/** The status of a reader another instance leads: what it last wrote (`stored`), else this instance's last error. */
export function followerStatus(source: string, names: ReplicationNames, stored: ReaderStatusRecord | undefined, localError: string | null): CdcSourceStatus {
  return {
    ...idleStatus(source, names),
    state: stored?.state === undefined ? 'starting' : (stored.state as CdcSourceStatus['state']),
    lastAcknowledgedLsn: stored?.lastLsn ?? null,
    lagBytes: stored?.lagBytes ?? null,
    retainedWalBytes: stored?.retainedWalBytes ?? null,
    lastError: stored?.lastError ?? localError ?? null,
  };
}
