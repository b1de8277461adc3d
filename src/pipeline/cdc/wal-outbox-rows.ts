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
 * Bounded by count and by bytes: a transaction arrives in chunks so that a large one is never held
 * whole (the reader's `maxChunkChanges`, `maxChunkBytes`). Past `HELD_ROWS_LIMIT` rows held, or
 * past `HELD_BYTES_LIMIT` bytes of them (`imageBytes`) with more than one held, the oldest is routed
 * at once, as it stands; a later UPDATE or DELETE of it in the transaction is then not seen. So an
 * outbox holds at most about one chunk's worth of rows more than the reader did (by count, and by
 * bytes plus one row: a single row larger than the bound stays held, folded until the end), and
 * the usual pattern — a row changed right after its insert — is folded whatever the transaction's
 * size. An UPDATE that makes the rows held larger than the bound routes the oldest too.
 */
import { createdMillis, type OutboxRow } from '../outbox/outbox-row.ts';
import type { RowChange, RowImage, TableRef, TransactionChunk } from './row-change.ts';
import { DEFAULT_MAX_CHUNK_BYTES } from './wal/wal-reader-options.ts';

/** Most rows held for one outbox and transaction: one default chunk's worth (`maxChunkChanges`). */
export const HELD_ROWS_LIMIT = 1_000;

/** Most bytes (`imageBytes`) of rows held for one outbox and transaction: one default chunk's worth (`maxChunkBytes`). */
export const HELD_BYTES_LIMIT = DEFAULT_MAX_CHUNK_BYTES;

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
  /** `imageBytes(image)`. */
  bytes: number;
}

/** `limit`: most rows held; `byteLimit`: most bytes of them (`imageBytes`), but for a single row. */
export function createTransactionRows(limit = HELD_ROWS_LIMIT, byteLimit = HELD_BYTES_LIMIT): TransactionRows {
  let transaction: { readonly xid: number; readonly commitLsn: string } | undefined;
  /** Held rows by insertion number: a Map keeps insertion order, so the oldest is its first entry. */
  const held = new Map<number, HeldRow>();
  /** Insertion number by key: an UPDATE may change the key and keep the row's place. */
  const byKey = new Map<string, number>();
  let heldBytes = 0;
  let inserted = 0;
  let routedEarly = false;

  const reset = () => {
    transaction = undefined;
    held.clear();
    byKey.clear();
    heldBytes = 0;
    inserted = 0;
    routedEarly = false;
  };

  /** Routes the oldest rows held (into `out`) while past a bound; returns how many. */
  const routeEarly = (out: RowImage[]): number => {
    let routed = 0;
    while (held.size > limit || (heldBytes > byteLimit && held.size > 1)) {
      const [oldest, row] = held.entries().next().value!;
      held.delete(oldest);
      heldBytes -= row.bytes;
      if (row.key !== undefined) byKey.delete(row.key);
      out.push(row.image);
      routed += 1;
    }
    return routed;
  };

  const insert = (change: RowChange) => {
    if (!change.new) return;
    const seq = inserted++;
    const key = keyOf(change.new, change.keyColumns);
    const bytes = imageBytes(change.new);
    held.set(seq, { key, image: change.new, bytes });
    heldBytes += bytes;
    if (key !== undefined) byKey.set(key, seq);
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
    const bytes = imageBytes(image);
    heldBytes += bytes - row.bytes;
    held.set(seq, { key: next, image, bytes });
  };

  const remove = (change: RowChange) => {
    const key = change.old && keyOf(change.old, change.keyColumns);
    const seq = key === undefined ? undefined : byKey.get(key);
    const row = seq === undefined ? undefined : held.get(seq);
    if (seq === undefined || row === undefined) return;
    byKey.delete(key!);
    held.delete(seq);
    heldBytes -= row.bytes;
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
        if (change.operation === 'insert') insert(change);
        else if (change.operation === 'update') update(change);
        else remove(change);
        early += routeEarly(rows);
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

/** What a value costs per key, number, boolean or null (and per array): a word, about. */
const SCALAR_BYTES = 8;

/**
 * An estimate of a row image's size, cheap enough for every outbox row: text and bytes by their
 * length, a word for any other scalar and each key (plus its name); a json/jsonb value is walked
 * (once per INSERT or UPDATE, as its routing serializes it again anyway), iteratively, since a
 * payload may nest deeper than the stack goes.
 */
export function imageBytes(image: RowImage): number {
  let bytes = 0;
  const stack: unknown[] = [image];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') bytes += value.length;
    else if (ArrayBuffer.isView(value)) bytes += value.byteLength;
    else if (Array.isArray(value)) {
      bytes += SCALAR_BYTES;
      for (const item of value) stack.push(item);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        bytes += SCALAR_BYTES + key.length;
        stack.push(item);
      }
    } else bytes += SCALAR_BYTES;
  }
  return bytes;
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
