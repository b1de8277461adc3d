/**
 * What the CDC service says about a source database before (or without) a reader: the slot and
 * publication names its environments agree on, and the status of a reader this instance does not lead.
 */
import { badUserInput, ErrorCode, TributaryError } from '../../errors.ts';
import type { CdcSourceRecord, ReaderStatusRecord } from './cdc-store.ts';
import { identityKey, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';
import { isValidPublicationName, isValidSlotName } from './wal/replication-setup.ts';
import { FIGURES_MAX_AGE_MS } from './wal/slot-readings.ts';
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

/** A database's names: those its environments set (they agree, `setSource` sees to it), else `derived` (the deployment's, `deployment-slots.ts`). */
export function namesOf(derived: ReplicationNames, rows: readonly CdcSourceRecord[]): ReplicationNames {
  return {
    slotName: rows.find((row) => row.slotName !== null)?.slotName ?? derived.slotName,
    publicationName: rows.find((row) => row.publicationName !== null)?.publicationName ?? derived.publicationName,
  };
}

/**
 * One reader per database: every environment on it must agree on its names (`others`: the other
 * environments' sources; `derived`: the database's derived names). @throws BAD_USER_INPUT naming
 * the field and the names the database is read with.
 */
export async function assertNamesAgree(
  wanted: { readonly slotName: string | null; readonly publicationName: string | null },
  identity: DatabaseIdentity,
  others: readonly CdcSourceRecord[],
  identityOf: (url: string) => Promise<DatabaseIdentity | undefined>,
  derived: ReplicationNames,
): Promise<void> {
  for (const other of others) {
    if (other.slotName === wanted.slotName && other.publicationName === wanted.publicationName) continue;
    const otherIdentity = await identityOf(other.databaseUrl);
    if (otherIdentity === undefined || identityKey(otherIdentity) !== identityKey(identity)) continue;
    const effective = namesOf(derived, [other]);
    throw badUserInput(
      other.slotName === wanted.slotName ? 'publicationName' : 'slotName',
      `Another environment already reads this database with slot "${effective.slotName}" and publication ` +
        `"${effective.publicationName}"; set the same slotName and publicationName${other.slotName === null && other.publicationName === null ? ' (none)' : ''}`,
    );
  }
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
    walSafety: null,
    otherSlots: null,
    lastError: null,
  };
}

/**
 * The status of a reader another instance leads: what it last wrote (`stored`), else this
 * instance's last error. Its figures only while the leader writes them on (every few seconds): a
 * leader gone or stuck leaves them unknown, not as they were (`wal/slot-readings.ts`).
 */
export function followerStatus(source: string, names: ReplicationNames, stored: ReaderStatusRecord | undefined, localError: string | null): CdcSourceStatus {
  const figures = stored !== undefined && (stored.ageMs ?? 0) <= FIGURES_MAX_AGE_MS ? stored : undefined;
  return {
    ...idleStatus(source, names),
    state: stored?.state === undefined ? 'starting' : (stored.state as CdcSourceStatus['state']),
    lastAcknowledgedLsn: stored?.lastLsn ?? null,
    lagBytes: figures?.lagBytes ?? null,
    retainedWalBytes: figures?.retainedWalBytes ?? null,
    walSafety: figures?.walSafety ?? null,
    otherSlots: figures?.otherSlots ?? null,
    lastError: stored?.lastError ?? localError ?? null,
  };
}
