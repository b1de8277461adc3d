/**
 * The rows a live model reads whole before it holds them (`LiveModelStore.rowsToFetch`). Without
 * REPLICA IDENTITY FULL, Postgres leaves out of an update the large (TOASTed) values it left
 * unchanged (`unchangedColumns`), and the server cannot afford a read per such update: a change
 * that brings in a row the model does not hold — an update that moved it into the filter, the
 * CREATED of a key or tenant change — would bring it without them. The client knows which rows it
 * does not hold: it reads those by key, `records(ids:)` under the model's filter, and the store
 * brings each in whole (`fetched`); an id the answer lacks has no row there now (deleted, or
 * outside the filter), and nothing comes in.
 *
 * - **Keys.** The ids are the changes' own (`ModelChange.id`): the server reads the key columns'
 *   values from them and looks the rows up by key, FETCH_BATCH ids a read (its limit), one page.
 * - **Bounded.** FETCHES_IN_FLIGHT reads at most per live model; the other rows wait their turn
 *   (what their changes did meanwhile is in what their read finds).
 * - **Races.** Changes of a row arriving while its read runs may be newer than what it finds: the
 *   store applies them on top, in order (one the read already reflects may show an older value in
 *   the columns it carries until the stream's next change of the row). A DELETED or LEFT arriving
 *   meanwhile takes the row out, and the read's answer is dropped.
 * - **Failures.** A read that fails (UNAVAILABLE, the socket gone) leaves its rows to be read
 *   again, and ends the stream with its error (`fail`): the live model waits it out with its
 *   backoff (`reconnecting`, the error shown) or stops on a refusal a retry would meet again; its
 *   next run reads them. Never a partial row instead.
 */
import { TributaryRecordsByIdsDocument, type TributaryRecordsByIdsQuery } from './generated.ts';
import type { AwaitedRow, LiveModelStore } from './live-model-store.ts';
import type { ModelRecord } from './live-model-types.ts';
import type { Session } from './session.ts';

/** Reads out at once per live model. */
export const FETCHES_IN_FLIGHT = 2;
/** Rows one read looks for at most (the server's `records(ids:)` takes 100). */
export const FETCH_BATCH = 100;

type Filter = Readonly<Record<string, string | readonly string[]>>;

export interface RowFetchesOptions {
  readonly session: Session;
  /** The stream's run ended: reads still out are dropped, their rows read again on the next. */
  readonly signal: AbortSignal;
  readonly store: LiveModelStore;
  readonly model: string;
  readonly filter: Filter | null;
  /** A read failed: the stream ends with its error. */
  readonly fail: (error: Error) => void;
  /** A read was answered: the server took this socket's operations. */
  readonly answered: () => void;
}

/** A live model's reads of whole rows on one socket. */
export class RowFetches {
  readonly #options: RowFetchesOptions;
  #inFlight = 0;

  constructor(options: RowFetchesOptions) {
    this.#options = options;
  }

  /** Sends reads for the rows awaiting one, while fewer than FETCHES_IN_FLIGHT are out. */
  pump(): void {
    const { store, signal, session } = this.#options;
    while (this.#inFlight < FETCHES_IN_FLIGHT && !signal.aborted && !session.signal.aborted) {
      const batch = this.#nextBatch();
      if (batch.size === 0) return;
      for (const row of batch.values()) store.fetching(row);
      this.#inFlight += 1;
      void this.#read(batch).finally(() => {
        this.#inFlight -= 1;
        this.pump();
      });
    }
  }

  async #read(batch: ReadonlyMap<string, AwaitedRow>): Promise<void> {
    const { store, signal, session, model, filter } = this.#options;
    const found = new Map<string, ModelRecord>();
    try {
      const { records }: TributaryRecordsByIdsQuery = await session.execute(TributaryRecordsByIdsDocument, { model, ids: [...batch.keys()], filter }, signal);
      for (const node of records.nodes) if (batch.has(node.id)) found.set(node.id, node.record as ModelRecord);
    } catch (error) {
      for (const row of batch.values()) store.refetch(row);
      // The run or the socket ended: the next run reads them, nothing failed.
      if (!signal.aborted && !session.signal.aborted) this.#options.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const [id, row] of batch) store.fetched(row, found.get(id));
    this.#options.answered();
  }

  /** The oldest rows awaiting a read, FETCH_BATCH at most, by id. */
  #nextBatch(): Map<string, AwaitedRow> {
    const rows = new Map<string, AwaitedRow>();
    for (const row of this.#options.store.rowsToFetch()) {
      rows.set(row.id, row);
      if (rows.size === FETCH_BATCH) break;
    }
    return rows;
  }
}
