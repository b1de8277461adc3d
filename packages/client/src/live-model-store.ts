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
 *
 * A row never shows without columns Postgres did not send: a change that would bring in a row not
 * held while it lacks some (`unchangedColumns`) makes it await a fetch of the whole row
 * (`rowsToFetch`, `fetched`: `live-model-fetch.ts` reads it), as a snapshot's left-out row awaits
 * its change.
 */
import { callEach, handlerErrorReport, type HandlerErrorReport } from './handler-errors.ts';
import { createRecentIds, type RecentIds } from './recent-ids.ts';
import type { LiveModelSnapshot, LiveModelStatus, ModelChange, ModelRecord, SnapshotNode } from './live-model-types.ts';

export type { LiveModelSnapshot, LiveModelStatus, ModelChange, ModelRecord, SnapshotNode } from './live-model-types.ts';

/** How long a live model waits, once its stream runs, for the rows its snapshot left out (`showWithoutPending`). */
export const PENDING_WAIT_MS = 3_000;

/** A snapshot loaded but not shown yet: what was shown before stays until its left-out rows came. */
interface Completing<R extends object> {
  /** The left-out rows not yet brought by a change. */
  readonly pending: Set<string>;
  readonly held: Pick<LiveModelSnapshot<R>, 'records' | 'byId'>;
  readonly lastUpdatedAt: string | null;
}

/** A change that brings a record (CREATED, UPDATED). */
type RecordChange<R extends object> = Extract<ModelChange<R>, { operation: 'CREATED' | 'UPDATED' }>;

/** A row not held that a change lacking columns would bring in: it awaits a fetch of the whole row. */
export interface AwaitedRow<R extends object = ModelRecord> {
  readonly id: string;
  /** The change that would have brought it: the whole row comes as this change, told to listeners. */
  readonly change: RecordChange<R>;
}

interface Awaited<R extends object> extends AwaitedRow<R> {
  /**
   * Its fetch went: the changes arriving since may be newer than what it reads (applied on top of
   * it, in order); the ones before it are in what it reads.
   */
  sent: boolean;
  readonly since: ModelChange<R>[];
}

/** A left-out row's place in the records' order, kept until its change comes (a Map keeps a key's position when it is set again). */
const SLOT = Symbol('slot');

/** A change applied, with the record held before it (undefined when there was none). */
export type ChangeListener<R extends object> = (change: ModelChange<R>, previous: R | undefined) => void;

export class LiveModelStore<R extends object = ModelRecord> {
  /** In the records' order; a SLOT is a row a snapshot left out, not held yet. */
  readonly #records = new Map<string, R | typeof SLOT>();
  #completing: Completing<R> | undefined;
  /** Rows awaiting a fetch of the whole row, by id (see `AwaitedRow`). */
  readonly #awaited = new Map<string, Awaited<R>>();
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
    // A fetch read before this snapshot could bring back a row it no longer has.
    this.#awaited.clear();
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
   * of a row not held, an update of a row not held that lacks a column the filter names, or a
   * change that leaves a row awaiting its fetch.
   *
   * With a filter the server sends every update outside it as LEFT, and a delete it cannot judge
   * (key only) to every subscriber: about rows not held, these keep the snapshot (and its
   * `records` array) as it is and tell no listener — no re-render, no O(n) copy per event.
   *
   * Postgres leaves a large (TOASTed) value an update did not change out of the change, so an
   * update may lack columns (`unchangedColumns` lists them): the update is merged into the held
   * row, which keeps what it had in them. A row not held that lacks a filtered column stays out —
   * the server could not judge it against the filter, and it cannot have entered the filter by an
   * update that left the filtered column as it was. A row not held (or left out by the snapshot)
   * that such a change would bring in — an update into the filter, a CREATED of a row whose key
   * or tenant changed — is not brought in partial: it awaits a fetch of the whole row
   * (`rowsToFetch`). Until the fetch is answered, a change that lacks columns again waits with it,
   * and one that brings the whole row or takes it out (DELETED, LEFT) is applied and makes the
   * fetch's answer moot.
   */
  apply(change: ModelChange<R>): boolean {
    if (!this.#seen.add(change.eventId)) return false;
    const awaited = this.#awaited.get(change.id);
    if (awaited !== undefined) {
      // Not sent yet, the fetch will read what this change did; sent, it may read before it.
      if (lacksColumns(change)) {
        if (awaited.sent) awaited.since.push(change);
        return false;
      }
      this.#awaited.delete(change.id);
    } else if (this.#fetchesFirst(change)) {
      this.#awaited.set(change.id, { id: change.id, change, sent: false, since: [] });
      return false;
    }
    return this.#take(change);
  }

  /** Rows awaiting a fetch not sent yet, oldest first. */
  *rowsToFetch(): IterableIterator<AwaitedRow<R>> {
    for (const row of this.#awaited.values()) if (!row.sent) yield row;
  }

  /** The fetch of `row` was sent: changes of it arriving from now on go on top of what it reads. */
  fetching(row: AwaitedRow<R>): void {
    const awaited = this.#awaited.get(row.id);
    if (awaited === row) awaited.sent = true;
  }

  /** The fetch of `row` failed, or its answer left the row out: it awaits a new one (`rowsToFetch`). */
  refetch(row: AwaitedRow<R>): void {
    const awaited = this.#awaited.get(row.id);
    if (awaited !== row) return;
    // A new fetch reads after every change that came until now.
    awaited.sent = false;
    awaited.since.length = 0;
  }

  /**
   * The whole row the fetch of `row` read (as `records` lists it), or undefined when it found none
   * (deleted since, or outside the filter now: nothing comes in). The row comes as the change that
   * awaited it brings one (its listeners told), then the changes that arrived while the fetch ran
   * go on top, in order. Ignored when the row awaits no fetch any more (a change brought it whole
   * or took it out; a snapshot or a new login replaced everything).
   */
  fetched(row: AwaitedRow<R>, record: R | undefined): void {
    const awaited = this.#awaited.get(row.id);
    if (awaited !== row) return;
    this.#awaited.delete(row.id);
    const { change } = awaited;
    // A left-out row found gone: its place goes, as its LEFT would take it.
    if (record === undefined) {
      if (this.#records.get(row.id) === SLOT) this.#take({ ...change, operation: 'LEFT', record: null });
      return;
    }
    this.#take({ ...change, record });
    for (const since of awaited.since) this.#take(since);
  }

  /** Whether a change lacking columns would bring in a row not held: it is fetched whole first. */
  #fetchesFirst(change: ModelChange<R>): change is RecordChange<R> {
    if (change.operation === 'DELETED' || change.operation === 'LEFT' || !lacksColumns(change)) return false;
    const held = this.#records.get(change.id);
    // A left-out row was in the filter: whatever the change lacks, the fetch judges it.
    if (held === SLOT) return true;
    return held === undefined && (change.operation === 'CREATED' || !this.#lacksFilterColumn(change.record));
  }

  /** `apply` past its de-duplication and the rows awaiting a fetch. */
  #take(change: ModelChange<R>): boolean {
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
  #merge(change: ModelChange<R>, previous: R | undefined): RecordChange<R> | undefined {
    if (change.operation === 'DELETED' || change.operation === 'LEFT' || change.record === null) return undefined;
    if (previous === undefined) return change.operation === 'UPDATED' && this.#lacksFilterColumn(change.record) ? undefined : change;
    // A CREATED replaces the row held, but for the columns Postgres did not send (their values are the held ones).
    if (change.operation === 'CREATED' && change.unchangedColumns.length === 0) return change;
    return { ...change, record: { ...previous, ...change.record } };
  }

  /**
   * Forgets every record, event id and the freshness (a new login: they were another user's); the
   * status is `loading` again, unless the model stopped (`error`, `closed`: kept, with its error).
   */
  reset(): void {
    this.#records.clear();
    this.#completing = undefined;
    this.#awaited.clear();
    this.#seen = createRecentIds(this.#dedupeWindow);
    this.#lastUpdatedAt = null;
    if (this.#status !== 'error' && this.#status !== 'closed') {
      this.#status = 'loading';
      // A refusal being retried (or an unauthorized connection) was the previous user's affair.
      this.#error = null;
    }
    this.#changed(true);
  }

  /** Whether `apply(change)` would add to `size` (for a limit on the records held): a row not held, or one it makes await its fetch. */
  adds(change: ModelChange<R>): boolean {
    const held = this.#records.get(change.id);
    if (this.#seen.has(change.eventId) || (held !== undefined && held !== SLOT) || change.operation === 'DELETED' || change.operation === 'LEFT' || change.record === null) return false;
    // Counted while it awaits its fetch: what the fetch brings adds nothing more.
    if (this.#awaited.has(change.id)) return false;
    if (lacksColumns(change)) return this.#fetchesFirst(change);
    return change.operation !== 'UPDATED' || !this.#lacksFilterColumn(change.record);
  }

  /** Records held now (a snapshot being completed: its records), and rows awaiting a fetch (each held once it came). */
  get size(): number {
    // A left-out row awaiting its fetch is a place not counted (pending), and counted as awaited.
    return this.#records.size - (this.#completing?.pending.size ?? 0) + this.#awaited.size;
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

/** A change that would bring a record without columns Postgres did not send. */
function lacksColumns<R extends object>(change: ModelChange<R>): boolean {
  return (change.operation === 'CREATED' || change.operation === 'UPDATED') && change.unchangedColumns.length > 0;
}

/** The later of two ISO 8601 times. */
function later(a: string | null, b: string): string {
  return a === null || Date.parse(b) > Date.parse(a) ? b : a;
}
