/**
 * `liveModel(model, { filter })`: a model's records kept current — the snapshot (`records`, every
 * page), then `changes(model, filter, after: <the snapshot's cursor>)`, which delivers every change
 * the snapshot does not hold and none it already reflects (the server's race-free join). On a new
 * socket the stream resumes from the last change's cursor — unless the socket's token grants other
 * reads (permissions, roles: `tokenGrants`) than the snapshot was read under: the server answers a
 * stream it may no longer read with silence, so the snapshot is read again (empty when denied). On
 * RESYNC_REQUIRED the snapshot is read again and the stream joined at its cursor. A new login of another user empties the store at once
 * (status `loading`, no records, no cursor) before the new user's socket is up, and it loads
 * afresh for them: what they may not read comes back empty, never as the previous user's rows.
 * A row a change would bring in without the large values Postgres left out of it
 * (`unchangedColumns`) is read whole first, and held once it came (`live-model-fetch.ts`).
 *
 * `live`: the snapshot is held and the change stream subscribed on the current socket, with no
 * refusal of it known. The protocol acknowledges no subscription, so it is `live` as its subscribe
 * leaves — one operation per model on the socket, the server's limit counts them. After a refusal
 * retried (RATE_LIMITED…) it shows `reconnecting` (`loading` before a snapshot) with the reason in
 * `error`; while the connection is `unauthorized` (a refused token) it shows `unauthorized`, the
 * server's reason in `error`. The retried subscribe is followed by a probe
 * (`Session.roundTrip`): `live` again once a change arrives or the probe is answered. A refusal
 * that comes later — the server decides some after a Redis round trip (a subject's new-stream
 * rate, UNAVAILABLE), after answering later operations — moves it back to `reconnecting` with
 * the error, as at the first. A stream ended for a revoked permission (FORBIDDEN,
 * PERMISSION_REVOKED) drops its records, as a new login does.
 *
 * Shared and reference-counted: every `liveModel` of one client with the same model and filter
 * uses one store and one server subscription; `close()` releases a handle, and the last release
 * stops the subscription after the current task — so a component mounted, unmounted and mounted
 * again in one go (React StrictMode) keeps the same one.
 */
import type { Connection } from './connection.ts';
import { isPermissionRevoked, isResyncRequired } from './errors.ts';
import { TributaryChangesDocument, TributaryRecordsDocument, type TributaryRecordsQuery } from './generated.ts';
import { RowFetches } from './live-model-fetch.ts';
import { LiveModelStore, PENDING_WAIT_MS, type LiveModelSnapshot, type LiveModelStatus, type ModelChange, type ModelRecord, type SnapshotNode } from './live-model-store.ts';
import { createRetryGate, runResumable } from './resumable.ts';
import type { Session } from './session.ts';

/**
 * One filter clause, with the operators the server accepts (PostgREST's): `eq.active`, `gte.18`,
 * `in.(active,vip)`, `is.null`. The value's text is not checked here (the server's BAD_USER_INPUT).
 */
export type ModelFilterClause = `${'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte'}.${string}` | `in.(${string})` | 'is.null' | 'is.notnull';

/**
 * The seed's filter: `{ status: 'eq.active', age: ['gte.18', 'lt.65'] }` (see the server's
 * README). With a record type (`liveModel<Contact>`), its columns are the record's and each
 * clause has an operator the server knows — a misspelt column would otherwise match nothing,
 * silently. Without one (or a record type with an index signature), any column and any text.
 */
export type ModelFilter<R extends object = ModelRecord> = string extends keyof R
  ? Readonly<Record<string, string | readonly string[]>>
  : { readonly [K in keyof R & string]?: ModelFilterClause | readonly ModelFilterClause[] };

export interface LiveModelOptions<R extends object = ModelRecord> {
  /** Evaluated on the server, for the snapshot and the changes alike. */
  readonly filter?: ModelFilter<R>;
  /** A record created (each change once, by event id; not for what a snapshot brings). */
  readonly onCreated?: (record: R, change: ModelChange<R>) => void;
  readonly onUpdated?: (record: R, change: ModelChange<R>) => void;
  /** A record deleted (or soft-deleted): the record as last held, or what the delete carried. */
  readonly onDeleted?: (record: R, change: ModelChange<R>) => void;
}

export interface LiveModel<R extends object = ModelRecord> {
  /** The current state, the same object until something changed (for `useSyncExternalStore`). */
  readonly getSnapshot: () => LiveModelSnapshot<R>;
  /** Called after every change of the snapshot; returns the unsubscription. */
  readonly subscribe: (listener: () => void) => () => void;
  readonly records: readonly R[];
  readonly status: LiveModelStatus;
  readonly isLive: boolean;
  readonly lastUpdatedAt: string | null;
  readonly error: Error | null;
  /** Releases this handle (idempotent); the subscription stops with the last one. */
  close(): void;
}

export interface LiveModelLimits {
  /** Rows per `records` page. @default 500 */
  readonly pageSize: number;
  /** Most records a live model holds; a larger snapshot, or a change adding a row past it, stops it with an error. @default 100000 */
  readonly maxRecords: number;
}

/** The live models of one client, by model and filter. */
export class LiveModels {
  readonly #connection: Connection;
  readonly #limits: LiveModelLimits;
  readonly #shared = new Map<string, SharedModel>();

  constructor(connection: Connection, limits: LiveModelLimits) {
    this.#connection = connection;
    this.#limits = limits;
  }

  open<R extends object>(model: string, options: LiveModelOptions<R> = {}): LiveModel<R> {
    const filter = options.filter as ModelFilter | undefined;
    const key = `${model}\u0000${stableJson(filter ?? null)}`;
    let shared = this.#shared.get(key);
    if (!shared) {
      const created: SharedModel = new SharedModel(this.#connection, model, filter, this.#limits, () => {
        if (this.#shared.get(key) === created) this.#shared.delete(key);
      });
      shared = created;
      this.#shared.set(key, shared);
    }
    return shared.acquire(options as LiveModelOptions) as unknown as LiveModel<R>;
  }

  /** Server subscriptions now (one per model and filter in use). */
  get size(): number {
    return this.#shared.size;
  }

  closeAll(): void {
    for (const shared of [...this.#shared.values()]) shared.stop();
  }
}

class SharedModel {
  readonly store: LiveModelStore;
  readonly #controller = new AbortController();
  readonly #connection: Connection;
  readonly #model: string;
  readonly #filter: ModelFilter | null;
  readonly #limits: LiveModelLimits;
  readonly #forget: () => void;
  readonly #stopUsing: () => void;
  #references = 0;
  /** Where the stream continues; undefined until a snapshot was read (and again for a resync). */
  #cursor: string | undefined;
  /** What the token let the socket read when the snapshot was read (`Session.grants`). */
  #readUnder: string | undefined;
  /**
   * Stopped for good (status `error`): subscribed on no further socket, but still registered with
   * the connection until released, so that a new login drops its records too.
   */
  #failed = false;
  /**
   * A refusal (or an unauthorized connection) was seen and the stream not served since: the next
   * subscribe is followed by a probe, and `live` waits for its answer or a change.
   */
  #refused = false;
  /** When a retry may go, across sockets (a refusal's `retryAfterMs`). */
  readonly #gate = createRetryGate();

  constructor(connection: Connection, model: string, filter: ModelFilter | undefined, limits: LiveModelLimits, forget: () => void) {
    this.#connection = connection;
    this.store = new LiveModelStore(undefined, (error) => connection.reportHandlerError(error), Object.keys(filter ?? {}));
    this.#model = model;
    this.#filter = filter ?? null;
    this.#limits = limits;
    this.#forget = forget;
    this.#stopUsing = connection.use({
      attach: (session) => this.#attach(session),
      reset: () => this.#reset(),
      // Not stopped (the same user's reconnect() resumes it), but nothing comes until then: say why.
      unauthorized: (error) => this.#unauthorized(error),
      tokenRefused: (error) => this.#tokenRefused(error),
    });
  }

  acquire(options: LiveModelOptions): LiveModel {
    this.#references += 1;
    const store = this.store;
    const stopListening = store.onChange((change, previous) => {
      // A delete's record may be its key only (no REPLICA IDENTITY FULL): the row as held, when it was.
      if (change.operation === 'DELETED') options.onDeleted?.(previous ?? change.record, change);
      else if (change.operation === 'LEFT' || change.record === null) return;
      else if (change.operation === 'CREATED') options.onCreated?.(change.record, change);
      else options.onUpdated?.(change.record, change);
    });
    let released = false;
    return {
      getSnapshot: () => store.getSnapshot(),
      subscribe: (listener) => store.subscribe(listener),
      get records() {
        return store.getSnapshot().records;
      },
      get status() {
        return store.getSnapshot().status;
      },
      get isLive() {
        return store.getSnapshot().isLive;
      },
      get lastUpdatedAt() {
        return store.getSnapshot().lastUpdatedAt;
      },
      get error() {
        return store.getSnapshot().error;
      },
      close: () => {
        if (released) return;
        released = true;
        stopListening();
        this.#release();
      },
    };
  }

  stop(): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort();
    this.#stopUsing();
    this.#forget();
    this.store.setStatus('closed');
  }

  #release(): void {
    this.#references -= 1;
    // After the current task: a handle acquired again right away (StrictMode) keeps the subscription.
    if (this.#references === 0) setTimeout(() => this.#references === 0 && this.stop(), 0);
  }

  /** A new login: the records, ids seen and cursor were the previous user's. */
  #reset(): void {
    this.#cursor = undefined;
    // The previous user's refusals: the new user's budget is their own.
    this.#refused = false;
    this.#gate.notBefore = 0;
    this.store.reset();
  }

  /** Not served for now (a refusal being retried, an unauthorized connection): out of `live`, with the reason. */
  #interrupted(error: Error): void {
    const { status } = this.store;
    if (this.#failed || status === 'closed' || status === 'error') return;
    this.#refused = true;
    // A snapshot is held (its cursor): its stream is what is not served. Without one, still loading.
    const next = status === 'live' || (status === 'loading' && this.#cursor !== undefined) ? 'reconnecting' : status;
    this.store.setStatus(next, error);
  }

  /** The connection refused the token: no socket until `reconnect()` — `unauthorized`, with the server's reason. */
  #unauthorized(error: Error): void {
    const { status } = this.store;
    if (this.#failed || status === 'closed' || status === 'error') return;
    this.#refused = true;
    this.store.setStatus('unauthorized', error);
  }

  /**
   * The server keeps refusing the token getToken returns as expired: still retried, so the status
   * stays (`loading`, `reconnecting`…), with the reason in `error` until the stream is live again.
   */
  #tokenRefused(error: Error): void {
    const { status } = this.store;
    if (this.#failed || status === 'closed' || status === 'error' || status === 'unauthorized') return;
    this.store.setStatus(status === 'live' ? 'reconnecting' : status, error);
  }

  #attach(session: Session): void {
    if (this.#failed) return;
    // A socket was acknowledged: the token is taken again. Not live before the stream is subscribed.
    if (this.store.status === 'unauthorized') this.store.setStatus(this.#cursor === undefined ? 'loading' : 'reconnecting');
    session.signal.addEventListener(
      'abort',
      () => {
        const { status } = this.store;
        if (status === 'live' || status === 'resyncing') this.store.setStatus('reconnecting');
      },
      { once: true },
    );
    void runResumable(this.#connection, session, this.#controller.signal, {
      gate: this.#gate,
      run: async (current, signal, delivered) => {
        // Read under other grants (the same user's token lost or gained a permission, sent on a new
        // socket): the server answers a stream it may no longer read with silence, not an error,
        // so resuming would keep rows the user may not see, `live`, for good. Read again: empty
        // when denied — as a refresh on the socket drops them (PERMISSION_REVOKED).
        if (this.#cursor === undefined || this.#readUnder !== current.grants) await this.#loadSnapshot(current, signal);
        // A row the stream adds past maxRecords stops the model, as a snapshot too large does, and a
        // failed fetch of a whole row ends the stream (retried): it is cut (what `onData` throws
        // would only be reported) and the error thrown from here.
        const overflow = new AbortController();
        let stopped: Error | undefined;
        const stop = (error: Error) => void ((stopped ??= error), overflow.abort());
        let running = true;
        const live = () => {
          if (!running || signal.aborted) return;
          this.#refused = false;
          // A snapshot still waiting for rows it left out is not shown yet: still loading (resyncing…).
          if (this.store.status !== 'live' && !this.store.completing) this.store.setStatus('live');
        };
        // Rows a change would bring in without their TOASTed values are read whole first (live-model-fetch.ts).
        const fetches = new RowFetches({ session: current, signal: AbortSignal.any([signal, overflow.signal]), store: this.store, model: this.#model, filter: this.#filter, fail: stop, answered: live });
        const streaming = current.stream(
          TributaryChangesDocument,
          { model: this.#model, filter: this.#filter, after: this.#cursor ?? null },
          ({ changes }) => {
            delivered();
            const change = changes as ModelChange;
            if (this.store.size >= this.#limits.maxRecords && this.store.adds(change)) return stop(this.#tooMany());
            this.#cursor = change.cursor;
            live();
            const completing = this.store.completing;
            this.store.apply(change);
            fetches.pump();
            // The last row the snapshot left out came: shown now, and live.
            if (completing) live();
          },
          AbortSignal.any([signal, overflow.signal]),
        );
        // Rows still awaiting their fetch when an earlier run ended.
        fetches.pump();
        // Left-out rows whose change never comes are given up: the snapshot is shown without them
        // (live then, unless a refusal's round trip below has not answered yet: that one says so).
        const giveUp = this.store.completing ? setTimeout(() => this.store.completing && (this.store.showWithoutPending(), this.#refused || live()), PENDING_WAIT_MS) : undefined;
        const settled = () => void ((running = false), clearTimeout(giveUp));
        void streaming.then(settled, settled);
        // The protocol acknowledges no subscription, and `changes` sends nothing until a change.
        // Never refused: live as the subscribe leaves, as one operation — a probe beside every
        // model would double what a socket full of them asks of the server's operation limit
        // (90 models: refusals where there were none). After a refusal, not before the server
        // answered a probe sent after this subscribe (or a change came).
        if (this.#refused) void current.roundTrip(signal).then(live, () => {});
        else live();
        try {
          await streaming;
        } catch (error) {
          // Not live from here on: the snapshot is read again (after a pause, when it comes again at once).
          if (isResyncRequired(error)) this.store.setStatus('resyncing');
          throw stopped ?? error;
        }
      },
      resync: async (current, signal) => {
        this.store.setStatus('resyncing');
        this.#cursor = undefined;
        await this.#loadSnapshot(current, signal);
      },
      retrying: (error) => this.#interrupted(error),
      fail: (error) => {
        // Stopped for good; a later liveModel() of this model and filter starts afresh.
        this.#failed = true;
        this.#forget();
        const reason = error instanceof Error ? error : new Error(String(error));
        this.store.setStatus('error', reason);
        // The refreshed token may no longer read the model: its rows must not stay on show, as
        // after a new login (the status and error stay).
        if (isPermissionRevoked(error)) this.store.reset();
      },
    });
  }

  /**
   * Every page of `records`, then the store replaced at once; the cursor is the first page's. Rows
   * a later page left out (`pending`: changed since the first page) keep their place; the store
   * shows the snapshot once the stream brought each (`LiveModelStore.load`).
   */
  async #loadSnapshot(session: Session, signal: AbortSignal): Promise<void> {
    const { grants } = session;
    const nodes: SnapshotNode[] = [];
    let cursor: string | undefined;
    // The first page's: the listing reflects every change committed before it (later pages leave
    // out what changed since; the stream brings it). The database's clock, as changes' commit
    // times are — never the device's, which may be minutes off.
    let readAt: string | undefined;
    for (let after: string | null = null; ; ) {
      const { records }: TributaryRecordsQuery = await session.execute(
        TributaryRecordsDocument,
        { model: this.#model, filter: this.#filter, first: this.#limits.pageSize, after },
        signal,
      );
      cursor ??= records.cursor;
      readAt ??= records.readAt;
      let slot = 0;
      for (const [index, node] of records.nodes.entries()) {
        for (; slot < records.pending.length && records.pending[slot]!.index <= index; slot += 1) nodes.push({ id: records.pending[slot]!.id, record: undefined });
        nodes.push({ id: node.id, record: node.record as ModelRecord });
      }
      for (; slot < records.pending.length; slot += 1) nodes.push({ id: records.pending[slot]!.id, record: undefined });
      if (nodes.length > this.#limits.maxRecords) throw this.#tooMany();
      if (!records.pageInfo.hasNextPage || records.pageInfo.endCursor === null) break;
      after = records.pageInfo.endCursor;
    }
    this.store.load(nodes, readAt);
    this.#cursor = cursor;
    this.#readUnder = grants;
  }

  #tooMany(): Error {
    return new Error(`liveModel(${this.#model}): more than ${this.#limits.maxRecords} records (maxRecords)`);
  }
}

/** JSON with object keys sorted, so equal filters make equal keys whatever their key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
