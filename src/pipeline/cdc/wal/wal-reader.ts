/**
 * The WAL reader: streams committed transactions of one database from a `pgoutput` logical
 * replication slot and hands them to `handle` as `TransactionChunk`s, in commit order. `handle` is
 * called for the next transaction while earlier ones may still be in it (up to
 * `maxPendingTransactions`), so its calls must start their work in call order; the chunks of one
 * large transaction wait for each other.
 *
 * The acknowledgement rule (ARCHITECTURE §6): Postgres may discard WAL and will never resend a
 * transaction once its position is confirmed, so a position is confirmed only when everything
 * before it has been handled:
 * - a transaction is confirmed (its commit record's end) only after `handle` resolved for its
 *   final chunk and for every earlier transaction — the library's automatic and periodic
 *   acknowledgements are off, because they confirm what was *received*;
 * - keepalives are answered with that handled position; when nothing received is left unhandled
 *   and no transaction is open, the keepalive's WAL end is confirmed too, so changes to tables
 *   outside the publication do not make the slot retain WAL forever;
 * - every (re)connection starts from the confirmed position explicitly, so whatever was received
 *   but not confirmed (a failed `handle`, a dropped connection, a crash) is received again:
 *   delivery is at least once, a redelivered transaction starting again from its first chunk.
 *
 * TRUNCATE is not a row change: it is logged and skipped. A rolled-back transaction is never
 * decoded by Postgres, so it produces nothing.
 */
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { ErrorCode, TributaryError } from '../../../errors.ts';
import type { Logger } from '../../../logger.ts';
import { formatLsn, parseLsn } from './lsn.ts';
import {
  assertLogicalReplicationAllowed,
  assertPublicationName,
  assertSlotName,
  CONNECT_TIMEOUT_MS,
  dropSlot,
  ensurePublication,
  ensureSlot,
  readSlotUsage,
  withConnection,
} from './replication-setup.ts';
import type { RowChange, RowImage, TransactionChunk } from '../row-change.ts';

export interface WalReaderOptions {
  /** URL of the database to read; its role needs the REPLICATION attribute (or superuser). */
  readonly connectionString: string;
  /** @default 'realtime_cdc_slot' */
  readonly slotName?: string;
  /** A lower-case identifier. @default 'realtime_cdc_pub' */
  readonly publicationName?: string;
  /** Tables of a publication the reader creates (`name` or `schema.name`). @default all tables */
  readonly tables?: readonly string[];
  /**
   * The caller already had a position on this slot (e.g. it stored events from it): a missing
   * slot then means it was lost, and `onSlotCreated` says `recreated: true`.
   * @default false
   */
  readonly expectExistingSlot?: boolean;
  readonly logger: Logger;
  /**
   * Receives the chunks in commit order (see `maxPendingTransactions`). A transaction is confirmed
   * after the promise of its final chunk, and of every earlier transaction, resolves; a rejection
   * drops the connection and everything not confirmed is received again after the reconnect delay.
   */
  readonly handle: (chunk: TransactionChunk) => Promise<void>;
  /** Most changes in one chunk; a larger transaction arrives in several. @default 1000 */
  readonly maxChunkChanges?: number;
  /**
   * Committed transactions whose `handle` may still be running while later ones are handed over
   * (in order). Positions are confirmed in commit order, each once it and everything before it
   * are handled. 1 hands over one transaction at a time. @default 256
   */
  readonly maxPendingTransactions?: number;
  /** First reconnect delay, in ms; doubles per failed attempt. @default 100 */
  readonly reconnectInitialDelayMs?: number;
  /** Longest reconnect delay, in ms. @default 5000 */
  readonly reconnectMaxDelayMs?: number;
  /**
   * How often the reader reports its confirmed position and asks Postgres for a keepalive, in
   * ms; keeps the connection alive while `handle` is slow and lets idle WAL be confirmed.
   * @default 10000
   */
  readonly statusIntervalMs?: number;
  /**
   * Called after the reader created the slot, before any chunk from it. `recreated: true` when
   * the slot existed before (lost, dropped, or `expectExistingSlot`): changes were missed, start
   * a new epoch. If it throws, the new slot is dropped again so the next attempt reports it again.
   */
  readonly onSlotCreated?: (info: { recreated: boolean }) => void | Promise<void>;
}

export type WalReaderState = 'starting' | 'streaming' | 'reconnecting' | 'stopped' | 'failed';

export interface WalReaderStatus {
  readonly state: WalReaderState;
  /** Highest WAL position received from the server (change, commit or keepalive), or null. */
  readonly lastReceivedLsn: string | null;
  /** Position confirmed to Postgres (the slot's confirmed_flush_lsn once it has arrived), or null. */
  readonly lastAcknowledgedLsn: string | null;
  /** `pg_current_wal_lsn() - confirmed_flush_lsn` at the last `inspect()`, in bytes; null before. */
  readonly lagBytes: number | null;
  /** `pg_current_wal_lsn() - restart_lsn` at the last `inspect()`, in bytes; null before. */
  readonly retainedWalBytes: number | null;
  readonly lastError: string | null;
}

export interface WalReader {
  /** Checks and creates what is missing, then resolves once streaming. Rejects (state `failed`) if that fails. */
  start(): Promise<void>;
  /** Closes the connection and timers; does not wait for a `handle` in progress. Idempotent. */
  stop(): Promise<void>;
  status(): WalReaderStatus;
  /** Queries the slot's lag and retained WAL over a normal connection, then returns `status()`. */
  inspect(): Promise<WalReaderStatus>;
}

export function createWalReader(options: WalReaderOptions): WalReader {
  return new PostgresWalReader(options);
}

/** Counts messages as they arrive, before the library queues them (flow control). */
class ObservedPgoutputPlugin extends PgoutputPlugin {
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

interface OpenTransaction {
  readonly xid: number;
  readonly commitLsn: string;
  readonly commitTime: Date;
  changes: RowChange[];
}

/** One replication connection; after it ends nothing of it may call `handle` or confirm. */
interface Session {
  readonly service: LogicalReplicationService;
  readonly plugin: ObservedPgoutputPlugin;
  /** Resolves (never rejects) when the stream ends, with the error that ended it if any. */
  ended: Promise<Error | undefined>;
  processed: number;
  transaction: OpenTransaction | undefined;
  /** The message being decoded/handled; never rejects. */
  inFlight: Promise<void> | undefined;
  /** Committed transactions handed to `handle` and not yet confirmed, oldest first. */
  pending: PendingTransaction[];
  closed: boolean;
  error: unknown;
  statusTimer: NodeJS.Timeout | undefined;
}

interface PendingTransaction {
  /** Where the transaction's commit record ends: what is confirmed once it and all before it are handled. */
  readonly endLsn: bigint;
  /** Settles (never rejects) when its `handle` settled. */
  readonly settled: Promise<void>;
  handled: boolean;
}

class PostgresWalReader implements WalReader {
  readonly #options: WalReaderOptions;
  readonly #slotName: string;
  readonly #publicationName: string;
  readonly #maxChunkChanges: number;
  readonly #maxPendingTransactions: number;
  readonly #logger: Logger;
  #state: WalReaderState = 'stopped';
  #started = false;
  #stopping = false;
  #stopRequested = Promise.withResolvers<void>();
  #stopped: Promise<void> | undefined;
  #session: Session | undefined;
  #supervisor: Promise<void> | undefined;
  #cancelBackoff: (() => void) | undefined;
  #attempt = 0;
  /** Everything before this position is handled (and confirmed); 0 until the slot is known. */
  #confirmed = 0n;
  #received = 0n;
  #slotSeen = false;
  #usage: { lagBytes: number; retainedWalBytes: number } | undefined;
  #lastError: string | null = null;

  constructor(options: WalReaderOptions) {
    this.#options = options;
    this.#slotName = options.slotName ?? 'realtime_cdc_slot';
    this.#publicationName = options.publicationName ?? 'realtime_cdc_pub';
    this.#maxChunkChanges = options.maxChunkChanges ?? 1000;
    this.#maxPendingTransactions = options.maxPendingTransactions ?? 256;
    assertSlotName(this.#slotName);
    assertPublicationName(this.#publicationName);
    if (!Number.isInteger(this.#maxPendingTransactions) || this.#maxPendingTransactions < 1) {
      throw new TributaryError(ErrorCode.BAD_USER_INPUT, `maxPendingTransactions must be a positive integer, got ${this.#maxPendingTransactions}`);
    }
    if (!Number.isInteger(this.#maxChunkChanges) || this.#maxChunkChanges < 1) {
      throw new TributaryError(
        ErrorCode.BAD_USER_INPUT,
        `maxChunkChanges must be a positive integer, got ${this.#maxChunkChanges}`,
      );
    }
    this.#logger = options.logger.child({ component: 'wal-reader', slot: this.#slotName });
  }

  async start(): Promise<void> {
    if (this.#started) throw new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, 'a WAL reader starts only once');
    this.#started = true;
    this.#state = 'starting';
    let session: Session;
    try {
      session = await this.#connect();
    } catch (error) {
      const stoppedByCaller = this.#stopping;
      await this.stop();
      if (stoppedByCaller) return;
      this.#recordError(error);
      this.#state = 'failed';
      throw error;
    }
    if (this.#stopping) return;
    this.#state = 'streaming';
    this.#supervisor = this.#supervise(session);
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#stopRequested.resolve();
      this.#cancelBackoff?.();
      if (this.#session) await this.#closeSession(this.#session);
      await this.#supervisor;
      this.#state = 'stopped';
      this.#logger.info('WAL reader stopped');
    })();
    return this.#stopped;
  }

  status(): WalReaderStatus {
    return {
      state: this.#state,
      lastReceivedLsn: this.#received === 0n ? null : formatLsn(this.#received),
      lastAcknowledgedLsn: this.#confirmed === 0n ? null : formatLsn(this.#confirmed),
      lagBytes: this.#usage?.lagBytes ?? null,
      retainedWalBytes: this.#usage?.retainedWalBytes ?? null,
      lastError: this.#lastError,
    };
  }

  async inspect(): Promise<WalReaderStatus> {
    const usage = await withConnection(this.#options.connectionString, (client) => readSlotUsage(client, this.#slotName));
    this.#usage = usage && { lagBytes: usage.lagBytes, retainedWalBytes: usage.retainedWalBytes };
    return this.status();
  }

  /** Waits for the stream to end, then reconnects with capped exponential backoff, until stopped. */
  async #supervise(first: Session): Promise<void> {
    let session: Session | undefined = first;
    while (!this.#stopping) {
      if (session) {
        const endError = await session.ended;
        await this.#closeSession(session);
        if (this.#stopping) return;
        const error = session.error ?? endError ?? new Error('the replication stream ended');
        this.#recordError(error);
        this.#state = 'reconnecting';
        this.#logger.warn({ err: error }, 'replication stream ended; reconnecting');
        // In order across connections too: the old session's handlers must settle first.
        await Promise.race([Promise.all([session.inFlight, ...session.pending.map((entry) => entry.settled)]), this.#stopRequested.promise]);
      }
      if (this.#stopping) return;
      await this.#backoff();
      if (this.#stopping) return;
      try {
        session = await this.#connect();
        this.#state = 'streaming';
      } catch (error) {
        session = undefined;
        if (this.#stopping) return;
        this.#recordError(error);
        this.#logger.warn({ err: error }, 'reconnecting the WAL reader failed');
      }
    }
  }

  #backoff(): Promise<void> {
    const initial = this.#options.reconnectInitialDelayMs ?? 100;
    const max = this.#options.reconnectMaxDelayMs ?? 5000;
    const delay = Math.min(max, initial * 2 ** Math.min(this.#attempt, 30));
    this.#attempt += 1;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      this.#cancelBackoff = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Checks the server, creates what is missing, and opens a stream from the confirmed position. */
  async #connect(): Promise<Session> {
    await withConnection(this.#options.connectionString, async (client) => {
      await assertLogicalReplicationAllowed(client);
      const publication = await ensurePublication(client, this.#publicationName, this.#options.tables);
      if (publication.created) this.#logger.info({ publication: this.#publicationName }, 'publication created');
      const slot = await ensureSlot(client, this.#slotName, this.#options.expectExistingSlot === true || this.#slotSeen);
      if (slot.created) {
        this.#logger[slot.recreated ? 'warn' : 'info']({ recreated: slot.recreated }, 'replication slot created');
        try {
          await this.#options.onSlotCreated?.({ recreated: slot.recreated });
        } catch (error) {
          await dropSlot(client, this.#slotName).catch(() => {});
          throw error;
        }
        this.#confirmed = parseLsn(slot.startLsn);
      } else if (!this.#slotSeen) {
        this.#confirmed = parseLsn(slot.startLsn);
      }
      this.#slotSeen = true;
    });
    if (this.#stopping) throw new TributaryError(ErrorCode.UNAVAILABLE, 'the WAL reader was stopped while connecting');
    return this.#openSession();
  }

  async #openSession(): Promise<Session> {
    const service = new LogicalReplicationService(
      {
        connectionString: this.#options.connectionString,
        application_name: 'tributary-cdc',
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      },
      // See the module comment: never acknowledge what was only received.
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    const plugin = new ObservedPgoutputPlugin({ protoVersion: 1, publicationNames: [this.#publicationName] }, (error) =>
      this.#failSession(session, error),
    );
    const session: Session = {
      service,
      plugin,
      ended: Promise.resolve(undefined),
      processed: 0,
      transaction: undefined,
      inFlight: undefined,
      pending: [],
      closed: false,
      error: undefined,
      statusTimer: undefined,
    };
    this.#session = session;
    service.on('error', (error) => this.#logger.debug({ err: error }, 'replication connection error'));
    service.on('heartbeat', (lsn, _timestamp, shouldRespond) => this.#onKeepalive(session, lsn, shouldRespond));
    service.on('data', (lsn: string, message: Pgoutput.Message) => this.#onData(session, lsn, message));
    const started = new Promise<void>((resolve) => service.on('start', () => resolve()));
    const from = formatLsn(this.#confirmed);
    session.ended = service.subscribe(plugin, this.#slotName, from).then(
      () => undefined,
      (error: unknown) => asError(error),
    );
    const endedEarly = session.ended.then((error) => {
      throw error ?? new Error('the replication stream ended before it started');
    });
    try {
      await Promise.race([started, endedEarly]);
    } catch (error) {
      await this.#closeSession(session);
      throw error;
    }
    endedEarly.catch(() => {});
    const interval = this.#options.statusIntervalMs ?? 10_000;
    session.statusTimer = setInterval(() => this.#sendStatus(session, true), interval);
    session.statusTimer.unref();
    this.#logger.info({ from }, 'streaming');
    return session;
  }

  async #closeSession(session: Session): Promise<void> {
    session.closed = true;
    clearInterval(session.statusTimer);
    await session.service
      .stop()
      .catch((error: unknown) => this.#logger.debug({ err: error }, 'closing the replication connection failed'));
    if (this.#session === session) this.#session = undefined;
  }

  /** Ends the session after an error; the supervisor reconnects from the confirmed position. */
  #failSession(session: Session, error: unknown): void {
    if (session.closed) return;
    session.error = error;
    session.closed = true;
    clearInterval(session.statusTimer);
    void session.service.stop().catch(() => {});
  }

  async #onData(session: Session, lsn: string, message: Pgoutput.Message): Promise<void> {
    if (session.closed) return;
    const work = this.#decode(session, parseLsn(lsn), message);
    session.inFlight = work.then(
      () => {},
      () => {},
    );
    try {
      await work;
    } catch (error) {
      this.#failSession(session, error);
    } finally {
      session.processed += 1;
      session.inFlight = undefined;
    }
  }

  async #decode(session: Session, lsn: bigint, message: Pgoutput.Message): Promise<void> {
    this.#noteReceived(lsn);
    switch (message.tag) {
      case 'begin': {
        if (session.transaction) throw protocolError('BEGIN inside a transaction');
        if (message.commitLsn === null) throw protocolError('BEGIN without a commit LSN');
        session.transaction = {
          xid: message.xid >>> 0, // the library reads it as a signed int32
          commitLsn: formatLsn(parseLsn(message.commitLsn)),
          // Microseconds since the Unix epoch, as the library converts them.
          commitTime: new Date(Number((message.commitTime as bigint) / 1000n)),
          changes: [],
        };
        return;
      }
      case 'insert':
      case 'update':
      case 'delete': {
        const transaction = session.transaction;
        if (!transaction) throw protocolError(`${message.tag} outside a transaction`);
        // Hand on a full chunk only when another change follows, so the final chunk is never empty.
        if (transaction.changes.length >= this.#maxChunkChanges) await this.#deliver(session, transaction, false);
        transaction.changes.push(toRowChange(message, formatLsn(lsn)));
        return;
      }
      case 'truncate':
        this.#logger.info(
          { tables: message.relations.map((relation) => `${relation.schema}.${relation.name}`) },
          'TRUNCATE is not a row change: skipped',
        );
        return;
      case 'commit': {
        const transaction = session.transaction;
        if (!transaction) throw protocolError('COMMIT outside a transaction');
        if (message.commitEndLsn === null) throw protocolError('COMMIT without an end LSN');
        const handled = transaction.changes.length > 0 ? this.#deliver(session, transaction, true) : Promise.resolve();
        session.transaction = undefined;
        this.#track(session, parseLsn(message.commitEndLsn), handled);
        // Backpressure: at most so many transactions in the handler at once.
        const oldest = session.pending[0];
        if (session.pending.length >= this.#maxPendingTransactions && oldest) await oldest.settled;
        return;
      }
      default:
        // relation (the library keeps the columns, including ones added mid-stream), type, origin.
        return;
    }
  }

  async #deliver(session: Session, transaction: OpenTransaction, final: boolean): Promise<void> {
    if (session.closed) throw new TributaryError(ErrorCode.UNAVAILABLE, 'the replication stream was closed');
    const { xid, commitLsn, commitTime, changes } = transaction;
    transaction.changes = [];
    await this.#options.handle({ xid, commitLsn, commitTime, changes, final });
  }

  /** Confirms a transaction's end once it and every earlier one are handled; a failure ends the session. */
  #track(session: Session, endLsn: bigint, handled: Promise<void>): void {
    const entry: PendingTransaction = {
      endLsn,
      handled: false,
      settled: handled.then(
        () => {
          entry.handled = true;
          let confirmable: bigint | undefined;
          while (session.pending[0]?.handled) confirmable = session.pending.shift()!.endLsn;
          if (confirmable !== undefined) this.#confirm(session, confirmable);
        },
        (error: unknown) => this.#failSession(session, error),
      ),
    };
    session.pending.push(entry);
  }

  #onKeepalive(session: Session, lsn: string, shouldRespond: boolean): void {
    if (session.closed) return;
    const walEnd = parseLsn(lsn);
    this.#noteReceived(walEnd);
    // Everything the server sent before this keepalive has been handled: the WAL up to its end
    // holds nothing more for us (only unpublished tables or other databases).
    const idle = session.plugin.received === session.processed && session.transaction === undefined && session.pending.length === 0;
    if (idle && walEnd > this.#confirmed) this.#confirm(session, walEnd);
    else if (shouldRespond) this.#sendStatus(session, false);
  }

  #confirm(session: Session, position: bigint): void {
    if (session.closed) return;
    if (position > this.#confirmed) {
      this.#confirmed = position;
      this.#attempt = 0;
    }
    this.#sendStatus(session, false);
  }

  /** A standby status update with the confirmed position; `ping` asks the server for a keepalive. */
  #sendStatus(session: Session, ping: boolean): void {
    if (session.closed || this.#confirmed === 0n) return;
    // The library reports the LSN it is given plus one, as the first byte not yet confirmed.
    session.service
      .acknowledge(formatLsn(this.#confirmed - 1n), ping)
      .catch((error: unknown) => this.#logger.debug({ err: error }, 'sending the standby status failed'));
  }

  #noteReceived(lsn: bigint): void {
    if (lsn > this.#received) this.#received = lsn;
  }

  #recordError(error: unknown): void {
    this.#lastError = error instanceof Error ? error.message : String(error);
  }
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function protocolError(what: string): TributaryError {
  return new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, `unexpected pgoutput message: ${what}`);
}

type ChangeMessage = Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete;

function toRowChange(message: ChangeMessage, lsn: string): RowChange {
  const { relation } = message;
  const base = {
    table: { schema: relation.schema, name: relation.name },
    // pgoutput flags the replica-identity columns: the key, or every column with REPLICA IDENTITY FULL.
    keyColumns: relation.keyColumns,
    lsn,
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
