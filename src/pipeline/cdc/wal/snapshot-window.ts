/**
 * A REPEATABLE READ snapshot in the WAL's terms: which transactions it saw committed, told from a
 * decoded transaction's 32-bit xid, up to the WAL position read after the snapshot was taken (every
 * transaction it saw committed before that position; later commits it cannot have seen). The WAL
 * outboxes' catch-up uses it to skip the rows it already routed from the table.
 */
import { parseLsn } from './lsn.ts';

export interface SnapshotWindow {
  readonly xmax: number;
  readonly inProgress: ReadonlySet<number>;
  /** The WAL insert position read after the snapshot. */
  readonly endLsn: bigint;
}

/** From `pg_current_snapshot()` text (`xmin:xmax:xip,…`, 64-bit xids) and the WAL position read after it. */
export function snapshotWindow(snapshot: string, lsn: string): SnapshotWindow {
  const [, xmax = '0', xip = ''] = snapshot.split(':');
  const low32 = (xid: string) => Number(BigInt(xid) & 0xffff_ffffn);
  return {
    xmax: low32(xmax),
    inProgress: new Set(xip === '' ? [] : xip.split(',').map(low32)),
    endLsn: parseLsn(lsn),
  };
}

/** The snapshot saw `xid` committed: it precedes `xmax` (modulo 2^32, as Postgres compares xids) and was not in progress. */
export function sawCommitted(window: SnapshotWindow, xid: number): boolean {
  const distance = (window.xmax - xid) >>> 0;
  return distance > 0 && distance < 0x8000_0000 && !window.inProgress.has(xid);
}
