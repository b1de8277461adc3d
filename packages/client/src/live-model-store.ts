/**
 * A live model's records as an external store (React's `useSyncExternalStore` contract):
 * `getSnapshot()` returns the same object until something changed — records, status, error — and
 * a new, frozen one after, whose `records` and `byId` are the previous ones unless a record
 * changed (a status change alone re-renders no list memoized on them); `subscribe(listener)` is
 * told after every change. Pure: no I/O, no timers; `live-model.ts` feeds it from the server.
 *
 * Changes are de-duplicated by event id (delivery is at least once): each is applied, and its
 * change listeners told, at most once — so a redelivered older change can never move a row back.
 * Every listener is told even when one throws; what it threw is reported (`onListenerError`).
 */
import type { ChangeOperation } from './generated.ts';
import { callEach, handlerErrorReport, type HandlerErrorReport } from './handler-errors.ts';
import { createRecentIds, type RecentIds } from './recent-ids.ts';

/** A model's rows are JSON objects; the type parameter is the caller's promise about their shape (not checked). */
export type ModelRecord = Readonly<Record<string, unknown>>;

/**
 * - `loading`: the first snapshot is being read;
 * - `live`: the snapshot is loaded and the change stream subscribed on the current socket, no
 *   refusal of it known (after one: once a change came, or a probe sent after the retried
 *   subscribe was answered). A refusal the server decides later (after a Redis round trip) may
 *   still come: `reconnecting` then, with the error;
 * - `reconnecting`: the stream is not served — the socket is gone, or the server refused the
 *   stream for now (RATE_LIMITED…: `error` says so, and it is retried); the records are kept and
 *   the stream resumes from its cursor;
 * - `resyncing`: the server could not resume the stream (RESYNC_REQUIRED): the snapshot is read again;
 * - `unauthorized`: the connection is `unauthorized` — the server refused the token (4403: none,
 *   invalid, expired for good) or a refresh brought another user (4412) — and nothing is tried
 *   until `client.reconnect()` (after a new login): `error` is a SessionEndedError with the close
 *   code and the server's `reason`. Records held are kept (the same user's reconnect resumes from
 *   the cursor; another user's drops them);
 * - `error`: stopped for good (`error` says why);
 * - `closed`: released.
 */
export type LiveModelStatus = 'loading' | 'live' | 'reconnecting' | 'resyncing' | 'unauthorized' | 'error' | 'closed';

export interface LiveModelSnapshot<R extends object = ModelRecord> {
  /** The records, in snapshot order (primary key), records created later after them. */
  readonly records: readonly R[];
  /** The same records by entity key (`ModelChange.id`). */
  readonly byId: ReadonlyMap<string, R>;
  readonly status: LiveModelStatus;
  /**
   * `status === 'live'` (seed 004's `isConnected`): the change stream is subscribed with no
   * refusal of it known — see `LiveModelStatus`.
   */
  readonly isLive: boolean;
  /**
   * How fresh the records are (seed 004's staleness disclosure): the commit time of the last change
   * applied, or the moment the last snapshot was read, whichever is later (ISO 8601); null before the first.
   */
  readonly lastUpdatedAt: string | null;
  /**
   * Why the model stopped (status `error`), why the connection refused its token (status
   * `unauthorized`: the server's reason in the message), or why it is not served now while it
   * retries (a refusal such as RATE_LIMITED: status `loading`, `reconnecting` or `resyncing`);
   * null once it is live again.
   */
  readonly error: Error | null;
}

/** One change as the stream delivers it. */
export interface ModelChange<R extends object = ModelRecord> {
  /** Stable across redeliveries. */
  readonly eventId: string;
  readonly operation: ChangeOperation;
  /** The entity key. */
  readonly id: string;
  /**
   * The record after the change — for a delete, what the table sends (its key at least). As the
   * server sends it, an update's record lacks the `unchangedColumns`; as a live model hands it to
   * `onUpdated`, it is merged into the row held, so it has them (their held values).
   */
  readonly record: R | null;
  /**
   * Columns the server's record lacks because Postgres did not send them: an update that left a
   * large (TOASTed) value unchanged, on a table without REPLICA IDENTITY FULL. The value is the one
   * held — a live model keeps it. Empty when the record is the whole row.
   */
  readonly unchangedColumns: readonly string[];
  readonly cursor: string;
  readonly lastUpdatedAt: string;
}

/** A change applied, with the record held before it (undefined when there was none). */
export type ChangeListener<R extends object> = (change: ModelChange<R>, previous: R | undefined) => void;

export class LiveModelStore<R extends object = ModelRecord> {
  readonly #records = new Map<string, R>();
  readonly #listeners = new Set<() => void>();
  readonly #changeListeners = new Set<ChangeListener<R>>();
  #seen: RecentIds;
  readonly #dedupeWindow: number | undefined;
  #status: LiveModelStatus = 'loading';
  #lastUpdatedAt: string | null = null;
  #error: Error | null = null;
  #snapshot: LiveModelSnapshot<R> | undefined;
  /** The records as the last snapshot holds them; undefined once one changed. */
  #held: Pick<LiveModelSnapshot<R>, 'records' | 'byId'> | undefined;
  readonly #report: HandlerErrorReport;
  readonly #filterColumns: readonly string[];

  /**
   * @param dedupeWindow event ids remembered. @default 10000
   * @param onListenerError told what a listener threw. @default thrown again in a microtask
   * @param filterColumns the columns the model's filter names. @default none
   */
  constructor(dedupeWindow?: number, onListenerError?: (error: unknown) => void, filterColumns: readonly string[] = []) {
    this.#dedupeWindow = dedupeWindow;
    this.#seen = createRecentIds(dedupeWindow);
    this.#report = handlerErrorReport(onListenerError);
    this.#filterColumns = filterColumns;
  }

  /** The current state; the same object until something changes. */
  getSnapshot(): LiveModelSnapshot<R> {
    this.#held ??= { records: Object.freeze([...this.#records.values()]), byId: new Map(this.#records) };
    this.#snapshot ??= Object.freeze({
      ...this.#held,
      status: this.#status,
      isLive: this.#status === 'live',
      lastUpdatedAt: this.#lastUpdatedAt,
      error: this.#error,
    });
    return this.#snapshot;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Told once per applied change (never for a duplicate, nor for what a snapshot brings). */
  onChange(listener: ChangeListener<R>): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** Replaces every record with a snapshot's (`readAt`: when it was read, ISO 8601). */
  load(nodes: readonly { readonly id: string; readonly record: R }[], readAt: string): void {
    this.#records.clear();
    for (const node of nodes) this.#records.set(node.id, node.record);
    this.#lastUpdatedAt = later(this.#lastUpdatedAt, readAt);
    this.#changed(true);
  }

  /**
   * Applies a change; false when nothing happens: a duplicate (already applied), a LEFT or DELETED
   * of a row not held, or an update of a row not held that lacks a column the filter names.
   *
   * With a filter the server sends every update outside it as LEFT, and a delete it cannot judge
   * (key only) to every subscriber: about rows not held, these keep the snapshot (and its
   * `records` array) as it is and tell no listener — no re-render, no O(n) copy per event.
   *
   * Postgres leaves a large (TOASTed) value an update did not change out of the change, so an
   * update may lack columns (`unchangedColumns` lists them): the update is merged into the held
   * row, which keeps what it had in them, and a row not held stays out —
   * the server could not judge it against the filter, and it cannot have entered the filter by an
   * update that left the filtered column as it was.
   */
  apply(change: ModelChange<R>): boolean {
    if (!this.#seen.add(change.eventId)) return false;
    const previous = this.#records.get(change.id);
    let applied = change;
    if (change.operation === 'DELETED' || change.record === null) {
      if (previous === undefined) return false;
      this.#records.delete(change.id);
    } else {
      const { record } = change;
      if (change.operation === 'UPDATED') {
        if (previous === undefined && this.#lacksFilterColumn(record)) return false;
        if (previous !== undefined) applied = { ...change, record: { ...previous, ...record } };
      }
      this.#records.set(change.id, applied.record!);
    }
    this.#lastUpdatedAt = later(this.#lastUpdatedAt, change.lastUpdatedAt);
    this.#changed(true);
    callEach(this.#changeListeners, (listener) => listener(applied, previous), this.#report);
    return true;
  }

  /**
   * Forgets every record, event id and the freshness (a new login: they were another user's); the
   * status is `loading` again, unless the model stopped (`error`, `closed`: kept, with its error).
   */
  reset(): void {
    this.#records.clear();
    this.#seen = createRecentIds(this.#dedupeWindow);
    this.#lastUpdatedAt = null;
    if (this.#status !== 'error' && this.#status !== 'closed') {
      this.#status = 'loading';
      // A refusal being retried (or an unauthorized connection) was the previous user's affair.
      this.#error = null;
    }
    this.#changed(true);
  }

  /** Whether `apply(change)` would add a row not held now (for a limit on the records held). */
  adds(change: ModelChange<R>): boolean {
    const { record } = change;
    if (this.#seen.has(change.eventId) || this.#records.has(change.id) || change.operation === 'DELETED' || record === null) return false;
    return change.operation !== 'UPDATED' || !this.#lacksFilterColumn(record);
  }

  /** Records held now. */
  get size(): number {
    return this.#records.size;
  }

  setStatus(status: LiveModelStatus, error: Error | null = null): void {
    if (status === this.#status && error === this.#error) return;
    this.#status = status;
    this.#error = error;
    this.#changed(false);
  }

  get status(): LiveModelStatus {
    return this.#status;
  }

  /** An update without a column the filter names (TOASTed, unchanged): not judged against the filter. */
  #lacksFilterColumn(record: R): boolean {
    return this.#filterColumns.some((column) => !Object.hasOwn(record, column));
  }

  #changed(records: boolean): void {
    this.#snapshot = undefined;
    if (records) this.#held = undefined;
    callEach(this.#listeners, (listener) => listener(), this.#report);
  }
}

/** The later of two ISO 8601 times. */
function later(a: string | null, b: string): string {
  return a === null || Date.parse(b) > Date.parse(a) ? b : a;
}
