/**
 * The rows a live model reads whole before it holds them (`LiveModelStore.rowsToFetch`). Without
 * REPLICA IDENTITY FULL, Postgres leaves out of an update the large (TOASTed) values it left
 * unchanged (`unchangedColumns`), and the server cannot afford a read per such update: a change
 * that brings in a row the model does not hold — an update that moved it into the filter, the
 * CREATED of a key or tenant change — would bring it without them. The client knows which rows it
 * does not hold: it reads those with the snapshot's own query, `records` with the model's filter
 * narrowed to the rows' keys, and the store brings each in whole (`fetched`).
 *
 * - **Keys.** `records` takes a filter, no ids, and the client is not told which columns make the
 *   key: they are the columns whose values spell the change's `id` (one column's text; several
 *   percent-encoded and joined by `/`), less those that do not spell the ids of the rows held (a
 *   column holding the same value in one row). Rows with the same key columns share a read
 *   (`in.(…)` on each, FETCH_BATCH rows at most), whose answer is matched by `id`. A key no filter
 *   spells (a bytea or date key, a value too long for a clause, a filter already near the
 *   server's clause limit) is looked for under the model's filter alone.
 * - **Cost.** The server evaluates filters in the process, reading the tenant's rows in key order
 *   (at most 10 × `first` a page): a read pages on until it found every row it looks for, or the
 *   listing ends.
 * - **Bounded.** FETCHES_IN_FLIGHT reads at most per live model; the other rows wait their turn
 *   (what their changes did meanwhile is in what their read finds).
 * - **Races.** A row a later page left out (changed since the listing's first page) is read again.
 *   Changes of a row arriving while its read runs may be newer than what it finds: the store
 *   applies them on top, in order (one the read already reflects may show an older value in the
 *   columns it carries until the stream's next change of the row). A DELETED or LEFT arriving
 *   meanwhile takes the row out, and the read's answer is dropped.
 * - **Failures.** A read that fails (UNAVAILABLE, the socket gone) leaves its rows to be read
 *   again, and ends the stream with its error (`fail`): the live model waits it out with its
 *   backoff (`reconnecting`, the error shown) or stops on a refusal a retry would meet again; its
 *   next run reads them. Never a partial row instead.
 */
import { TributaryRecordsDocument, type TributaryRecordsQuery } from './generated.ts';
import type { AwaitedRow, LiveModelStore } from './live-model-store.ts';
import type { ModelRecord } from './live-model-types.ts';
import type { Session } from './session.ts';

/** Reads out at once per live model. */
export const FETCHES_IN_FLIGHT = 2;
/** Rows one read looks for at most (the server's `in.(…)` takes 100 items). */
export const FETCH_BATCH = 100;
/** A read's `records` page: the server's largest, which scans the most rows a page (10 × first). */
const FETCH_PAGE = 1000;
/** The server's limits on a filter (`filters/model-filter.ts`): clauses in all, characters a clause. */
const MAX_CLAUSES = 20;
const MAX_CLAUSE_LENGTH = 500;
/** Rows held a key's columns are checked against. */
const KEY_SAMPLES = 20;
/** A row the listing left out (changed since its first page): read again. */
const LEFT_OUT = Symbol('left out');

type Filter = Readonly<Record<string, string | readonly string[]>>;

/** The key columns of a row and the text each holds; null: none can be told (read under the model's filter alone). */
type Key = ReadonlyMap<string, string> | null;

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
  /** Each awaited row's key, told once (with the rows held when it was first looked at). */
  readonly #keys = new WeakMap<AwaitedRow, Key>();
  #inFlight = 0;

  constructor(options: RowFetchesOptions) {
    this.#options = options;
  }

  /** Sends reads for the rows awaiting one, while fewer than FETCHES_IN_FLIGHT are out. */
  pump(): void {
    const { store, signal, session } = this.#options;
    while (this.#inFlight < FETCHES_IN_FLIGHT && !signal.aborted && !session.signal.aborted) {
      const batch = this.#nextBatch();
      if (batch === undefined) return;
      for (const row of batch.rows.values()) store.fetching(row);
      this.#inFlight += 1;
      void this.#read(batch).finally(() => {
        this.#inFlight -= 1;
        this.pump();
      });
    }
  }

  async #read(batch: Batch): Promise<void> {
    const { store, signal, session } = this.#options;
    let found: Map<string, ModelRecord | typeof LEFT_OUT>;
    try {
      found = await this.#find(batch);
    } catch (error) {
      for (const row of batch.rows.values()) store.refetch(row);
      // The run or the socket ended: the next run reads them, nothing failed.
      if (!signal.aborted && !session.signal.aborted) this.#options.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const [id, row] of batch.rows) {
      const record = found.get(id);
      if (record === LEFT_OUT) store.refetch(row);
      else store.fetched(row, record);
    }
    this.#options.answered();
  }

  /** Every page of the batch's listing until each of its rows was found (or left out), or it ends. */
  async #find(batch: Batch): Promise<Map<string, ModelRecord | typeof LEFT_OUT>> {
    const { session, signal, model } = this.#options;
    const found = new Map<string, ModelRecord | typeof LEFT_OUT>();
    for (let after: string | null = null; ; ) {
      const { records }: TributaryRecordsQuery = await session.execute(TributaryRecordsDocument, { model, filter: batch.filter, first: FETCH_PAGE, after }, signal);
      for (const node of records.nodes) if (batch.rows.has(node.id)) found.set(node.id, node.record as ModelRecord);
      for (const left of records.pending) if (batch.rows.has(left.id)) found.set(left.id, LEFT_OUT);
      if (found.size === batch.rows.size || !records.pageInfo.hasNextPage || records.pageInfo.endCursor === null) return found;
      after = records.pageInfo.endCursor;
    }
  }

  /** The oldest row awaiting a read, and the next ones with the same key columns, as many as a filter takes. */
  #nextBatch(): Batch | undefined {
    const { store, filter } = this.#options;
    let columns: string | undefined;
    const rows = new Map<string, AwaitedRow>();
    const values = new Map<string, string[]>();
    let samples: readonly (readonly [string, ModelRecord])[] | undefined;
    for (const row of store.rowsToFetch()) {
      let key = this.#keys.get(row);
      if (key === undefined) {
        samples ??= heldSamples(store);
        key = keyOf(row, samples, clauseCount(filter));
        this.#keys.set(row, key);
      }
      const signature = key === null ? '' : [...key.keys()].join(',');
      columns ??= signature;
      if (signature !== columns || (key !== null && !fits(values, key))) continue;
      rows.set(row.id, row);
      for (const [column, text] of key ?? []) {
        const texts = values.get(column) ?? [];
        if (!texts.includes(text)) texts.push(text);
        values.set(column, texts);
      }
      if (rows.size === FETCH_BATCH) break;
    }
    return rows.size === 0 ? undefined : { rows, filter: narrowed(filter, values) };
  }
}

interface Batch {
  readonly rows: ReadonlyMap<string, AwaitedRow>;
  readonly filter: Filter | null;
}

/** The model's filter, and on each key column the texts the batch's rows hold. */
function narrowed(filter: Filter | null, values: ReadonlyMap<string, readonly string[]>): Filter | null {
  if (values.size === 0) return filter;
  const entries = new Map<string, string | readonly string[]>(Object.entries(filter ?? {}));
  for (const [column, texts] of values) {
    const clause = inClause(texts);
    const before = entries.get(column);
    entries.set(column, before === undefined ? clause : [...(typeof before === 'string' ? [before] : before), clause]);
  }
  // fromEntries defines each column, `__proto__` too, as a property of its own.
  return Object.fromEntries(entries);
}

/** Whether the clauses with `key`'s texts added stay within the server's clause length. */
function fits(values: ReadonlyMap<string, readonly string[]>, key: ReadonlyMap<string, string>): boolean {
  for (const [column, text] of key) {
    const texts = values.get(column) ?? [];
    if (!texts.includes(text) && inClause([...texts, text]).length > MAX_CLAUSE_LENGTH) return false;
  }
  return true;
}

/** `in.("1","a \"b\"")`: every item quoted, `"` and `\` escaped (the server's in-list grammar). */
function inClause(texts: readonly string[]): string {
  return `in.(${texts.map((text) => `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')})`;
}

function clauseCount(filter: Filter | null): number {
  let count = 0;
  for (const clause of Object.values(filter ?? {})) count += typeof clause === 'string' ? 1 : clause.length;
  return count;
}

/** A few rows held, with their ids: a column that is not the key rarely spells each one's id. */
function heldSamples(store: LiveModelStore): (readonly [string, ModelRecord])[] {
  const samples: (readonly [string, ModelRecord])[] = [];
  for (const sample of store.getSnapshot().byId) {
    if (samples.length === KEY_SAMPLES) break;
    samples.push(sample);
  }
  return samples;
}

/**
 * The key columns of `row` and the text each holds: for each part of its id, the columns of its
 * record holding that text that hold the same part of each sample's id too. Null when a part has
 * none, or the filter could not take the clauses.
 */
function keyOf(row: AwaitedRow, samples: readonly (readonly [string, ModelRecord])[], filterClauses: number): Key {
  const { record } = row.change;
  for (const parts of readingsOf(row.id)) {
    const key = new Map<string, string>();
    for (const [index, part] of parts.entries()) {
      for (const column of Object.keys(record)) {
        if (keyText(record[column]) !== part) continue;
        // A sample whose id reads as another number of parts says nothing of this reading.
        const agrees = samples.every(([id, held]) => {
          const read = readingsOf(id).find((each) => each.length === parts.length);
          return read === undefined || keyText(held[column]) === read[index];
        });
        if (agrees) key.set(column, part);
      }
      if (![...key.values()].includes(part)) break;
    }
    const spelt = parts.every((part) => [...key.values()].includes(part));
    if (spelt && key.size + filterClauses <= MAX_CLAUSES && [...key.values()].every((text) => inClause([text]).length <= MAX_CLAUSE_LENGTH)) return key;
  }
  return null;
}

/** How an entity key reads: one column's text, and with a `/`, several parts, each percent-decoded. */
function readingsOf(id: string): string[][] {
  const readings = [[id]];
  if (!id.includes('/')) return readings;
  try {
    readings.push(id.split('/').map(decodeURIComponent));
  } catch {
    // Not percent-encoded: one column's text only.
  }
  return readings;
}

/** The text an entity key is made of for a column's value (the server's `textOf`); undefined for a value no key here is made of. */
function keyText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
}
