/**
 * One outbox read from the WAL (`wal-outboxes.ts`): its binding, and the state its reader keeps of
 * it — the catch-up's snapshot window, what waits for clean-up, the figures since the last report,
 * the rows of the transaction being read.
 */
import type { OutboxRules } from '../outbox/outbox-row.ts';
import { createDeadRowTally, type DeadRowTally } from '../outbox/outbox-store.ts';
import { outboxTable, type OutboxCounts, type OutboxTable } from '../outbox/outbox-sql.ts';
import type { TransactionChunk } from './row-change.ts';
import { createCleanUpQueue, type CleanUpQueue } from './wal-outbox-cleanup.ts';
import { createTransactionRows, type TransactionRows } from './wal-outbox-rows.ts';
import { parseLsn } from './wal/lsn.ts';
import { sawCommitted, type SnapshotWindow } from './wal/snapshot-window.ts';
import type { SourceConnections } from './wal/source-connections.ts';

export interface WalOutboxBinding extends OutboxRules {
  /** The outbox table, `name` or `schema.name`, as the outbox's own login names it. */
  readonly table: string;
  /**
   * The connections of the outbox's own database URL, for every statement on its table: its
   * login's search path finds the table `setOutboxSource` checked, with the privileges checked
   * there. With the outbox pool's limits: a statement stuck behind a lock holds the chunks of the
   * database only until its timeout.
   */
  readonly connections: SourceConnections;
}

export class WalOutbox {
  readonly binding: WalOutboxBinding;
  readonly table: OutboxTable;
  readonly name: string;
  /** Schema and name as the WAL names the table; set by the first catch-up. */
  resolved: { schema: string; name: string } | undefined;
  active = false;
  /** What the catch-up's snapshot saw (until the stream passes it). */
  window: SnapshotWindow | undefined;
  cleanUpQueue: CleanUpQueue = createCleanUpQueue();
  routed = 0;
  /** Rows set aside as dead and not yet in the durable counts: they stay here until written (`WalOutboxFigures.deadRows`). */
  deadRows: DeadRowTally = createDeadRowTally();
  /** What the table last answered; kept while it cannot be read (not zeros that would claim it drained). */
  counts: OutboxCounts | undefined;
  lastError: string | null = null;
  lastSweep = 0;
  /** The rows of the transaction being read, held until its final chunk. */
  readonly transactionRows: TransactionRows = createTransactionRows();

  constructor(binding: WalOutboxBinding) {
    this.binding = binding;
    this.table = outboxTable(binding.table);
    this.name = `${binding.scope.app}/${binding.scope.env}`;
  }

  /**
   * What was routed since the last figures, handed over once (a rate: a report lost costs a point
   * of it), and the dead rows not written yet, which are not handed over but stay until written.
   */
  handOver(): { routed: number; deadRows: Pick<DeadRowTally, 'unwritten' | 'written'> } {
    const taken = { routed: this.routed, deadRows: this.deadRows };
    this.routed = 0;
    return taken;
  }

  /** Whether an insert of this chunk is one the catch-up's snapshot saw (and therefore routed or found processed). */
  seenByCatchUp(chunk: TransactionChunk): boolean {
    const window = this.window;
    if (!window) return false;
    if (parseLsn(chunk.commitLsn) >= window.endLsn) {
      this.window = undefined;
      return false;
    }
    return sawCommitted(window, chunk.xid);
  }
}
