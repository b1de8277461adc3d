/**
 * Decoding `pgoutput` messages (as pg-logical-replication parses them) into the reader's row
 * changes. Pure, apart from the plugin's message counter and sizes; the reader decides what to do with them.
 */
import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { InternalError } from '../../../errors.ts';
import { columnParser, columnValue } from '../row-values.ts';
import type { RowChange, RowImage } from '../row-change.ts';
import { formatLsn, parseLsn } from './lsn.ts';

/**
 * Counts messages as they arrive, before the library queues them (flow control), and keeps the
 * size of each row change: see {@link ObservedPgoutputPlugin.sizeOf}.
 */
export class ObservedPgoutputPlugin extends PgoutputPlugin {
  received = 0;
  readonly #onParseError: (error: unknown) => void;
  /** Bytes each insert, update or delete message took on the wire; gone with the message. */
  readonly #sizes = new WeakMap<Pgoutput.Message, number>();

  constructor(options: Pgoutput.Options, onParseError: (error: unknown) => void) {
    super(options);
    this.#onParseError = onParseError;
  }

  override parse(buffer: Buffer): Pgoutput.Message {
    this.received += 1;
    try {
      const message = super.parse(buffer);
      // The library keeps this relation and parses its rows with these: dates and timestamps from
      // Postgres's text, as `records` reads them (`row-values.ts`), not as pg's local-time Dates.
      if (message.tag === 'relation') for (const column of message.columns) column.parser = columnParser(column.typeOid);
      else if (message.tag === 'insert' || message.tag === 'update' || message.tag === 'delete') this.#sizes.set(message, buffer.length);
      return message;
    } catch (error) {
      // Thrown here, the error would escape from the socket's data event and crash the process.
      // The session is closed by the callback, so the placeholder is never decoded.
      this.#onParseError(error);
      return { tag: 'origin', originLsn: null, originName: '' };
    }
  }

  /**
   * A row change's size, for the reader's byte bounds (`maxChunkBytes`, `maxPendingBytes`): the
   * bytes its message took on the wire. pgoutput sends each column value as its text (or raw bytes)
   * with a few bytes of framing, so this is about the sum of the values' lengths as they arrived,
   * old and new row images both, known without walking the decoded values. Decoded, text takes
   * about as much (twice, when not Latin-1), bytea half (it arrives as hex), parsed json some
   * times more: an estimate, as cheap as a bound checked on every change must be. 0 for a message
   * this plugin did not parse.
   */
  sizeOf(message: Pgoutput.Message): number {
    return this.#sizes.get(message) ?? 0;
  }
}

/** A transaction between its BEGIN and COMMIT: the changes not yet handed on. */
export interface OpenTransaction {
  readonly xid: number;
  readonly commitLsn: string;
  readonly commitTime: Date;
  changes: RowChange[];
  /** The LSN of the change decoded last, across the chunks already handed on. */
  lastLsn: string | undefined;
  /** How many of the changes decoded so far have `lastLsn`: the next one's `lsnIndex` if it has it too. */
  atLastLsn: number;
  /** A chunk ending with a TRUNCATE was handed on: the commit hands on a final chunk even without changes. */
  truncated?: true;
}

/** Postgres sent something the protocol does not allow here: a fault, never the caller's. */
export function protocolError(what: string): InternalError {
  return new InternalError('WAL_PROTOCOL', `unexpected pgoutput message: ${what}`);
}

export function openTransaction(message: Pgoutput.MessageBegin): OpenTransaction {
  if (message.commitLsn === null) throw protocolError('BEGIN without a commit LSN');
  return {
    xid: message.xid >>> 0, // the library reads it as a signed int32
    commitLsn: formatLsn(parseLsn(message.commitLsn)),
    // Microseconds since the Unix epoch, as the library converts them.
    commitTime: new Date(Number((message.commitTime as bigint) / 1000n)),
    changes: [],
    lastLsn: undefined,
    atLastLsn: 0,
  };
}

export type ChangeMessage = Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete;

/**
 * Decodes the transaction's next change into `changes`, numbered among the changes at its LSN
 * (`RowChange.lsnIndex`). The rows of one multi-insert record arrive one after the other, so a
 * change at the previous change's LSN is the next row of the same record.
 */
export function addChange(transaction: OpenTransaction, message: ChangeMessage, lsn: string): RowChange {
  const lsnIndex = lsn === transaction.lastLsn ? transaction.atLastLsn : 0;
  transaction.lastLsn = lsn;
  transaction.atLastLsn = lsnIndex + 1;
  const change = toRowChange(message, lsn, lsnIndex);
  transaction.changes.push(change);
  return change;
}

/** `lsnIndex`: which of the changes at `lsn` in its transaction this one is (see `RowChange.lsnIndex`). */
export function toRowChange(message: ChangeMessage, lsn: string, lsnIndex: number): RowChange {
  const { relation } = message;
  const base = {
    table: { schema: relation.schema, name: relation.name },
    // pgoutput flags the replica-identity columns: the key, or every column with REPLICA IDENTITY FULL.
    keyColumns: relation.keyColumns,
    lsn,
    lsnIndex,
  };
  return withRelationColumns(rowChangeOf(message, base), relation);
}

function rowChangeOf(message: ChangeMessage, base: Pick<RowChange, 'table' | 'keyColumns' | 'lsn' | 'lsnIndex'>): RowChange {
  const { relation } = message;
  switch (message.tag) {
    case 'insert': {
      const { image, unchanged } = splitUnchangedToast(message.new, relation);
      return { ...base, operation: 'insert', new: image, old: undefined, unchangedToastColumns: unchanged };
    }
    case 'update': {
      const { image, unchanged } = splitUnchangedToast(message.new, relation);
      return { ...base, operation: 'update', new: image, old: oldImage(message), unchangedToastColumns: unchanged };
    }
    case 'delete':
      return { ...base, operation: 'delete', new: undefined, old: oldImage(message), unchangedToastColumns: [] };
  }
}

/** Column names per relation: one array per relation description (`RowChange.relationColumns`). */
const relationColumnNames = new WeakMap<Pgoutput.MessageRelation, readonly string[]>();

/** Sets `relationColumns`, not enumerable (see `RowChange.relationColumns`). */
function withRelationColumns(change: RowChange, relation: Pgoutput.MessageRelation): RowChange {
  let columns = relationColumnNames.get(relation);
  if (columns === undefined) relationColumnNames.set(relation, (columns = Object.freeze(relation.columns.map((column) => column.name))));
  return Object.defineProperty(change, 'relationColumns', { value: columns, enumerable: false });
}

/** The full old row (REPLICA IDENTITY FULL), the old key (key changed, or a delete), or none. */
function oldImage(message: Pgoutput.MessageUpdate | Pgoutput.MessageDelete): RowImage | undefined {
  const old = message.old ?? message.key;
  return old ? splitUnchangedToast(old, message.relation).image : undefined;
}

/**
 * The library decodes an unchanged TOASTed value ('u') as `undefined` (or the old row's value
 * with REPLICA IDENTITY FULL, which then is a real value); SQL NULL is `null`. Undefined columns
 * are left out of the image and listed instead, so they are never mistaken for NULL. Values take
 * their JSON form by their column's type (`row-values.ts`), as `records` reads them.
 */
function splitUnchangedToast(tuple: Readonly<Record<string, unknown>>, relation: Pgoutput.MessageRelation): { image: RowImage; unchanged: string[] } {
  const types = columnTypes(relation);
  const image: Record<string, unknown> = {};
  const unchanged: string[] = [];
  for (const [column, value] of Object.entries(tuple)) {
    if (value === undefined) unchanged.push(column);
    else image[column] = columnValue(value, types.get(column));
  }
  return { image, unchanged };
}

/** Column name → type OID, per relation (the library keeps one relation object until it changes). */
const relationTypes = new WeakMap<Pgoutput.MessageRelation, ReadonlyMap<string, number>>();

function columnTypes(relation: Pgoutput.MessageRelation): ReadonlyMap<string, number> {
  let types = relationTypes.get(relation);
  if (types === undefined) relationTypes.set(relation, (types = new Map(relation.columns.map((column) => [column.name, column.typeOid]))));
  return types;
}
