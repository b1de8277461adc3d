/**
 * Decoding `pgoutput` messages (as pg-logical-replication parses them) into the reader's row
 * changes. Pure, apart from the plugin's message counter; the reader decides what to do with them.
 */
import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { InternalError } from '../../../errors.ts';
import type { RowChange, RowImage } from '../row-change.ts';
import { formatLsn, parseLsn } from './lsn.ts';

/** Counts messages as they arrive, before the library queues them (flow control). */
export class ObservedPgoutputPlugin extends PgoutputPlugin {
  received = 0;
  readonly #onParseError: (error: unknown) => void;

  constructor(options: Pgoutput.Options, onParseError: (error: unknown) => void) {
    super(options);
    this.#onParseError = onParseError;
  }

  override parse(buffer: Buffer): Pgoutput.Message {
    this.received += 1;
    try {
      return super.parse(buffer);
    } catch (error) {
      // Thrown here, the error would escape from the socket's data event and crash the process.
      // The session is closed by the callback, so the placeholder is never decoded.
      this.#onParseError(error);
      return { tag: 'origin', originLsn: null, originName: '' };
    }
  }
}

/** A transaction between its BEGIN and COMMIT: the changes not yet handed on. */
export interface OpenTransaction {
  readonly xid: number;
  readonly commitLsn: string;
  readonly commitTime: Date;
  changes: RowChange[];
  /** Changes decoded so far, across the chunks already handed on: the next change's ordinal. */
  decoded: number;
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
    decoded: 0,
  };
}

export type ChangeMessage = Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete;

/** `ordinal`: the change's position in its transaction (see `RowChange.ordinal`). */
export function toRowChange(message: ChangeMessage, lsn: string, ordinal: number): RowChange {
  const { relation } = message;
  const base = {
    table: { schema: relation.schema, name: relation.name },
    // pgoutput flags the replica-identity columns: the key, or every column with REPLICA IDENTITY FULL.
    keyColumns: relation.keyColumns,
    lsn,
    ordinal,
  };
  switch (message.tag) {
    case 'insert': {
      const { image, unchanged } = splitUnchangedToast(message.new);
      return { ...base, operation: 'insert', new: image, old: undefined, unchangedToastColumns: unchanged };
    }
    case 'update': {
      const { image, unchanged } = splitUnchangedToast(message.new);
      return { ...base, operation: 'update', new: image, old: oldImage(message), unchangedToastColumns: unchanged };
    }
    case 'delete':
      return { ...base, operation: 'delete', new: undefined, old: oldImage(message), unchangedToastColumns: [] };
  }
}

/** The full old row (REPLICA IDENTITY FULL), the old key (key changed, or a delete), or none. */
function oldImage(message: Pgoutput.MessageUpdate | Pgoutput.MessageDelete): RowImage | undefined {
  const old = message.old ?? message.key;
  return old ? splitUnchangedToast(old).image : undefined;
}

/**
 * The library decodes an unchanged TOASTed value ('u') as `undefined` (or the old row's value
 * with REPLICA IDENTITY FULL, which then is a real value); SQL NULL is `null`. Undefined columns
 * are left out of the image and listed instead, so they are never mistaken for NULL.
 */
function splitUnchangedToast(tuple: Readonly<Record<string, unknown>>): { image: RowImage; unchanged: string[] } {
  const image: Record<string, unknown> = {};
  const unchanged: string[] = [];
  for (const [column, value] of Object.entries(tuple)) {
    if (value === undefined) unchanged.push(column);
    else image[column] = value;
  }
  return { image, unchanged };
}
