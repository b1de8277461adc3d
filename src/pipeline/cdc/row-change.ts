/**
 * One row change as the WAL reader decodes it from `pgoutput`, before any mapping.
 * The shape the reader produces and the mapping evaluator consumes.
 */

/** A column value as decoded (text-format values parsed by column type; `null` for SQL NULL). */
export type ColumnValue = unknown;

export type RowImage = Readonly<Record<string, ColumnValue>>;

export type RowOperation = 'insert' | 'update' | 'delete';

export interface TableRef {
  readonly schema: string;
  readonly name: string;
}

export interface RowChange {
  readonly operation: RowOperation;
  readonly table: TableRef;
  /** Names of the table's replica-identity (key) columns, in table order. */
  readonly keyColumns: readonly string[];
  /**
   * Every column of the table as the stream describes it at this change (the pgoutput relation:
   * after an `ALTER TABLE`, the table as altered), whatever the images hold — an unchanged
   * TOASTed column or a delete's key-only old row are still listed. The same array for every change
   * of the relation until its next description, so it can key caches (`mapping-drift.ts`).
   * Not enumerable: it describes the stream, not the row (raw changes do not store it). Undefined
   * when not known (a change built by hand).
   */
  readonly relationColumns?: readonly string[];
  /**
   * The row after the change (insert, update); undefined for delete. Columns whose TOASTed value
   * did not change and was not sent are absent here and listed in `unchangedToastColumns`.
   */
  readonly new: RowImage | undefined;
  /**
   * The row before the change: the full row with `REPLICA IDENTITY FULL`, otherwise only the key
   * columns (delete, or an update that changed the key), or undefined when Postgres sent none.
   */
  readonly old: RowImage | undefined;
  /** Columns of `new` that Postgres did not send because their TOASTed value is unchanged. */
  readonly unchangedToastColumns: readonly string[];
  /**
   * The LSN of this change's record, as `XXXXXXXX/XXXXXXXX`. Not unique: every row of one
   * multi-insert record (COPY, and batched inserts) has the record's LSN.
   */
  readonly lsn: string;
  /**
   * Which of its transaction's changes at `lsn` this one is, from 0, counted across the
   * transaction's chunks: 0 but for the second and later rows of a multi-insert record. With
   * `lsn`, identifies the change; a redelivered transaction is decoded again from its first change,
   * so it is the same every time.
   */
  readonly lsnIndex: number;
}

/** All changes of one committed transaction, in commit order (a large one arrives in chunks). */
export interface TransactionChunk {
  readonly xid: number;
  /** LSN of the transaction's commit record: what is acknowledged once the whole transaction is handled. */
  readonly commitLsn: string;
  readonly commitTime: Date;
  readonly changes: readonly RowChange[];
  /**
   * A TRUNCATE that follows `changes` in the transaction: a chunk ends where one is, and the
   * transaction's later changes come in its next chunks (a final one always follows, even empty).
   */
  readonly truncate?: TableTruncate;
  /** True on the transaction's last chunk. */
  readonly final: boolean;
}

/** One TRUNCATE statement as the publication sends it. */
export interface TableTruncate {
  /** The LSN of its record, as `XXXXXXXX/XXXXXXXX`. */
  readonly lsn: string;
  /**
   * Every table it emptied that the publication streams: with CASCADE the referencing tables too;
   * a partitioned table by its root (`publish_via_partition_root`), its partitions not named.
   */
  readonly tables: readonly TableRef[];
}
