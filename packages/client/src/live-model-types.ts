/**
 * The types a live model's store and its callers share: records, the snapshot a store shows, its
 * status, and a change as the `changes` stream delivers it.
 */

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
   * held — a live model keeps it, and fetches a row it does not hold whole before it shows it.
   * Empty when the record is the whole row.
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
