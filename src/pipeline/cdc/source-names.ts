/**
 * What the CDC service says about a source database before (or without) a reader: the slot and
 * publication names its environments agree on, and the status of a reader this instance does not lead.
 */
import type { CdcSourceStatus } from './cdc-source.ts';
import type { CdcSourceRecord } from './cdc-store.ts';
import { defaultReplicationNames, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';

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
