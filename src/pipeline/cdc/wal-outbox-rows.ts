/**
 * One outbox's rows of the transaction being read from the WAL, folded into what the transaction
 * committed — the rows POLL mode reads from the table (README, "The outbox": the same row becomes
 * the same event in both modes).
 *
 * An application may insert its outbox row and change it before it commits: an ORM inserts, then
 * updates the row with what it computed; a business write is cancelled and its event deleted. The
 * WAL has each step, so a row inserted in the transaction is held, by its key, until the
 * transaction's last chunk; an UPDATE of it later in the transaction replaces its image (last image
 * wins), a DELETE drops it. Which row a change is about comes from the table's replica identity,
 * the only columns pgoutput sends of an old row: the outbox's DDL makes `id` the primary key, so an
 * UPDATE names it in its new row (in its old key when the UPDATE changed it), a DELETE in its old
 * key. An UPDATE does not send a TOASTed value it left alone (`unchangedToastColumns`): the held
 * image, complete since an INSERT sends every column, keeps it.
 *
 * An UPDATE or DELETE of a row inserted by an earlier transaction matches nothing held and changes
 * nothing: that row was routed as its own transaction committed it.
 *
 * Bounded: a transaction arrives in chunks so that a large one is never held whole (the reader's
 * `maxChunkChanges`). Past `HELD_ROWS_LIMIT` rows held, the oldest is routed at once, as it stands;
 * a later UPDATE or DELETE of it in the transaction is then not seen. So an outbox holds at most
 * about one chunk's worth of rows more than the reader did, and the usual pattern — a row changed
 * right after its insert — is folded whatever the transaction's size.
 */
import { createdMillis, type OutboxRow } from '../outbox/outbox-row.ts';
import type { RowChange, RowImage, TableRef, TransactionChunk } from './row-change.ts';

/** Most rows held for one outbox and transaction: one default chunk's worth (`maxChunkChanges`). */
export const HELD_ROWS_LIMIT = 1_000;

export interface FoldedRows {
  /** Row images to route with this chunk, in the order their transaction inserted them. */
  readonly rows: readonly RowImage[];
  /** How many of them are routed before their transaction's end, past the limit. */
  readonly early: number;
  /** True for the first chunk of a transaction that routes rows early (to warn once per transaction). */
  readonly firstEarly: boolean;
}

export interface TransactionRows {
  /**
   * Folds the chunk's changes of the outbox table (`isOutbox`) into the rows held for its
   * transaction. A chunk of another transaction than the rows held starts over: the one they were
   * of never reached its final chunk here (its session ended), and is received again from its first.
   */
  fold(chunk: TransactionChunk, isOutbox: (table: TableRef) => boolean): FoldedRows;
  /** Forgets what is held: the reader stopped, or the outbox is caught up from its table. */
  reset(): void;
}

interface HeldRow {
  /** The row's key (`keyOf`), or undefined when the table gives none: nothing can change the row then. */
  key: string | undefined;
  image: RowImage;
}

export function createTransactionRows(limit = HELD_ROWS_LIMIT): TransactionRows {
  let transaction: { readonly xid: number; readonly commitLsn: string } | undefined;
  /** Held rows by insertion number: a Map keeps insertion order, so the oldest is its first entry. */
  const held = new Map<number, HeldRow>();
  /** Insertion number by key: an UPDATE may change the key and keep the row's place. */
  const byKey = new Map<string, number>();
  let inserted = 0;
  let routedEarly = false;

  const reset = () => {
    transaction = undefined;
    held.clear();
    byKey.clear();
    inserted = 0;
    routedEarly = false;
  };

  const insert = (change: RowChange, out: RowImage[]): number => {
    if (!change.new) return 0;
    const seq = inserted++;
    const key = keyOf(change.new, change.keyColumns);
    held.set(seq, { key, image: change.new });
    if (key !== undefined) byKey.set(key, seq);
    if (held.size <= limit) return 0;
    const [oldest, row] = held.entries().next().value!;
    held.delete(oldest);
    if (row.key !== undefined) byKey.delete(row.key);
    out.push(row.image);
    return 1;
  };

  const update = (change: RowChange) => {
    if (!change.new) return;
    // The old key when the UPDATE changed it (or with REPLICA IDENTITY FULL); the new row's otherwise.
    const key = keyOf(change.old ?? change.new, change.keyColumns);
    const seq = key === undefined ? undefined : byKey.get(key);
    const row = seq === undefined ? undefined : held.get(seq);
    if (seq === undefined || row === undefined) return;
    // Columns the UPDATE did not send (unchanged TOAST) are absent from `new`: the held value stays.
    const image = { ...row.image, ...change.new };
    const next = keyOf(image, change.keyColumns);
    byKey.delete(key!);
    if (next !== undefined) byKey.set(next, seq);
    held.set(seq, { key: next, image });
  };

  const remove = (change: RowChange) => {
    const key = change.old && keyOf(change.old, change.keyColumns);
    const seq = key === undefined ? undefined : byKey.get(key);
    if (seq === undefined) return;
    byKey.delete(key!);
    held.delete(seq);
  };

  return {
    fold(chunk, isOutbox) {
      if (transaction?.xid !== chunk.xid || transaction.commitLsn !== chunk.commitLsn) {
        reset();
        transaction = { xid: chunk.xid, commitLsn: chunk.commitLsn };
      }
      const rows: RowImage[] = [];
      let early = 0;
      for (const change of chunk.changes) {
        if (!isOutbox(change.table)) continue;
        if (change.operation === 'insert') early += insert(change, rows);
        else if (change.operation === 'update') update(change);
        else remove(change);
      }
      const firstEarly = early > 0 && !routedEarly;
      if (early > 0) routedEarly = true;
      if (chunk.final) {
        for (const row of held.values()) rows.push(row.image);
        reset();
      }
      return { rows, early, firstEarly };
    },
    reset,
  };
}

/**
 * The key a change names its row by. `id` alone when the replica identity includes it (the
 * primary key of the outbox's DDL; every column with REPLICA IDENTITY FULL): it is the row's
 * identity everywhere else too (clean-up, event ids), and leaves the payload out of the key.
 * Otherwise the identity's columns; undefined when the table has none, or the image lacks one.
 */
function keyOf(image: RowImage, keyColumns: readonly string[]): string | undefined {
  const columns = keyColumns.includes('id') ? ['id'] : keyColumns;
  if (columns.length === 0 || !columns.every((column) => column in image)) return undefined;
  try {
    return JSON.stringify(columns.map((column) => image[column]));
  } catch {
    // A value JSON cannot write (nested too deep): the row cannot be told apart, so nothing changes it.
    return undefined;
  }
}

/** A row image as the poller's row: the id as text, everything validated is left as decoded. */
export function outboxRowOf(image: RowImage): OutboxRow {
  const value = (column: string) => image[column] ?? null;
  return {
    id: String(image['id']),
    created_ms: createdMillis(image['created_at']),
    topic: value('topic'),
    event_type: value('event_type'),
    payload: value('payload'),
    tenant: value('tenant'),
    entity: value('entity'),
    table_name: value('table_name'),
    operation: value('operation'),
  };
}
