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
import { callEach, handlerErrorReport, type HandlerErrorReport } from './handler-errors.ts';
import { createRecentIds, type RecentIds } from './recent-ids.ts';

/** A model's rows are JSON objects; the type parameter is the caller's promise about their shape (not checked). */
/** How long a live model waits, once its stream runs, for the rows its snapshot left out (`showWithoutPending`). */
export const PENDING_WAIT_MS = 3_000;

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
   * applied, or when the last snapshot was read (its first page's `readAt`), whichever is later
   * (ISO 8601); null before the first. Both by the source database's clock, never the device's:
   * compare it with the device's `Date.now()` only knowing the two clocks may differ.
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

/** What every change carries, whatever its operation. */
interface ModelChangeFields {
  /** Stable across redeliveries. */
  readonly eventId: string;
  /** The entity key. */
  readonly id: string;
  /**
   * Columns the server's record lacks because Postgres did not send them: an update that left a
   * large (TOASTed) value unchanged, on a table without REPLICA IDENTITY FULL. The value is the one
   * held — a live model keeps it. Empty when the record is the whole row.
   */
  readonly unchangedColumns: readonly string[];
  readonly cursor: string;
  /** The change's commit time, by the source database's clock (ISO 8601). */
  readonly lastUpdatedAt: string;
}

/**
 * One change as the stream delivers it, by operation:
 * - `CREATED`, `UPDATED`: the record after the change. As the server sends it, an update's (and a
 *   row moved to another tenant or key's CREATED) lacks the `unchangedColumns`; as a live model
 *   hands it to `onUpdated`, it is merged into the row held, so it has them (their held values);
 * - `DELETED` (a soft delete too): what the table sends — the whole row with REPLICA IDENTITY
 *   FULL (or a soft delete), else its key columns only;
 * - `LEFT` (with a filter only): the row no longer matches it; no record.
 */
export type ModelChange<R extends object = ModelRecord> =
  | (ModelChangeFields & { readonly operation: 'CREATED' | 'UPDATED'; readonly record: R })
  | (ModelChangeFields & { readonly operation: 'DELETED'; readonly record: Partial<R> })
  | (ModelChangeFields & { readonly operation: 'LEFT'; readonly record: null });

/** A snapshot's row, or where a row it left out belongs (`record` undefined: the stream brings it). */
export interface SnapshotNode<R extends object = ModelRecord> {
  readonly id: string;
  readonly record: R | undefined;
}

/** A snapshot loaded but not shown yet: what was shown before stays until its left-out rows came. */
interface Completing<R extends object> {
  /** The left-out rows not yet brought by a change. */
  readonly pending: Set<string>;
  readonly held: Pick<LiveModelSnapshot<R>, 'records' | 'byId'>;
  readonly lastUpdatedAt: string | null;
}

/** A left-out row's place in the records' order, kept until its change comes (a Map keeps a key's position when it is set again). */
const SLOT = Symbol('slot');

/** A change applied, with the record held before it (undefined when there was none). */
export type ChangeListener<R extends object> = (change: ModelChange<R>, previous: R | undefined) => void;

export class LiveModelStore<R extends object = ModelRecord> {
  /** In the records' order; a SLOT is a row a snapshot left out, not held yet. */
  readonly #records = new Map<string, R | typeof SLOT>();
  #completing: Completing<R> | undefined;
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
    this.#held ??= this.#completing?.held ?? heldOf(this.#records);
    this.#snapshot ??= Object.freeze({
      ...this.#held,
      status: this.#status,
      isLive: this.#status === 'live',
      lastUpdatedAt: this.#completing ? this.#completing.lastUpdatedAt : this.#lastUpdatedAt,
      error: this.#error,
    });
    return this.#snapshot;
  }

  /**
   * A snapshot is loaded whose left-out rows (`load`'s slots) the stream has not all brought yet:
   * what `getSnapshot` shows is still what was shown before it (nothing, at first).
   */
  get completing(): boolean {
    return this.#completing !== undefined;
  }

  /**
   * Shows a snapshot still waiting for rows it left out without them: their change may never come
   * (a mapping that does not announce every update, a table rewritten while it was read). A later
   * change of one brings it as any change does (its listeners told).
   */
  showWithoutPending(): void {
    const completing = this.#completing;
    if (!completing) return;
    for (const id of completing.pending) this.#records.delete(id);
    this.#completing = undefined;
    this.#changed(true);
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

  /**
   * Replaces every record with a snapshot's (`readAt`: when it was read, by the database's clock,
   * ISO 8601). A node without a record is a row the snapshot left out (changed since its first
   * page; the stream brings it): its place is kept, and the snapshot is not shown until a change
   * of each such row was applied (`completing`) — a first render without rows that existed, and
   * those appended later at the end (`onUpdated` for rows never shown), is what it avoids. The
   * changes applied meanwhile go into the snapshot, as what it brings: no change listener is told.
   */
  load(nodes: readonly SnapshotNode<R>[], readAt: string): void {
    const shown = this.#completing ?? { held: this.getSnapshot(), lastUpdatedAt: this.#lastUpdatedAt };
    this.#records.clear();
    const pending = new Set<string>();
    for (const node of nodes) {
      this.#records.set(node.id, node.record ?? SLOT);
      if (node.record === undefined) pending.add(node.id);
    }
    this.#lastUpdatedAt = later(this.#lastUpdatedAt, readAt);
    this.#completing = pending.size > 0 ? { pending, held: shown.held, lastUpdatedAt: shown.lastUpdatedAt } : undefined;
    // Not complete: nothing shown changed.
    if (this.#completing === undefined) this.#changed(true);
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
    const completing = this.#completing;
    const held = this.#records.get(change.id);
    // A left-out row's first change brings it (or takes it out): nothing was held before.
    const previous = held === SLOT ? undefined : held;
    const applied = this.#merge(change, previous);
    // Set again, a Map key keeps its place: a left-out row comes where key order put it.
    if (applied === undefined) this.#records.delete(change.id);
    else this.#records.set(change.id, applied.record);
    if (completing) {
      completing.pending.delete(change.id);
      if (held === SLOT || applied !== undefined || previous !== undefined) this.#lastUpdatedAt = later(this.#lastUpdatedAt, change.lastUpdatedAt);
      if (completing.pending.size > 0) return true;
      // Every left-out row came: the snapshot is shown, as a snapshot (no change listener).
      this.#completing = undefined;
      this.#changed(true);
      return true;
    }
    if (applied === undefined && previous === undefined) return false;
    this.#lastUpdatedAt = later(this.#lastUpdatedAt, change.lastUpdatedAt);
    this.#changed(true);
    callEach(this.#changeListeners, (listener) => listener(applied ?? change, previous), this.#report);
    return true;
  }

  /** The change as held after it (an update merged into the row held), or undefined when it leaves no row. */
  #merge(change: ModelChange<R>, previous: R | undefined): Extract<ModelChange<R>, { operation: 'CREATED' | 'UPDATED' }> | undefined {
    if (change.operation === 'DELETED' || change.operation === 'LEFT' || change.record === null) return undefined;
    if (change.operation !== 'UPDATED') return change;
    if (previous === undefined) return this.#lacksFilterColumn(change.record) ? undefined : change;
    return { ...change, record: { ...previous, ...change.record } };
  }

  /**
   * Forgets every record, event id and the freshness (a new login: they were another user's); the
   * status is `loading` again, unless the model stopped (`error`, `closed`: kept, with its error).
   */
  reset(): void {
    this.#records.clear();
    this.#completing = undefined;
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
    const held = this.#records.get(change.id);
    if (this.#seen.has(change.eventId) || (held !== undefined && held !== SLOT) || change.operation === 'DELETED' || change.operation === 'LEFT' || change.record === null) return false;
    return change.operation !== 'UPDATED' || !this.#lacksFilterColumn(change.record);
  }

  /** Records held now (a snapshot being completed: its records). */
  get size(): number {
    return this.#records.size - (this.#completing?.pending.size ?? 0);
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

/** The records and their map, without the places of rows not held yet. */
function heldOf<R extends object>(records: ReadonlyMap<string, R | typeof SLOT>): Pick<LiveModelSnapshot<R>, 'records' | 'byId'> {
  const byId = new Map<string, R>();
  for (const [id, record] of records) if (record !== SLOT) byId.set(id, record);
  return { records: Object.freeze([...byId.values()]), byId };
}

/** The later of two ISO 8601 times. */
function later(a: string | null, b: string): string {
  return a === null || Date.parse(b) > Date.parse(a) ? b : a;
}
