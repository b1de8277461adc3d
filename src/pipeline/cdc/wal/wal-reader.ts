/**
 * The WAL reader: streams committed transactions of one database from a `pgoutput` logical
 * replication slot and hands them to `handle` as `TransactionChunk`s, in commit order. `handle` is
 * called for the next transaction while earlier ones may still be in it (up to
 * `maxPendingTransactions` and `maxPendingBytes`), so its calls must start their work in call
 * order; the chunks of one large transaction (each within `maxChunkChanges` and `maxChunkBytes`)
 * wait for each other. The bounds: `wal-reader-options.ts`.
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
 * A TRUNCATE ends its chunk (`TransactionChunk.truncate`): the changes before it and the
 * TRUNCATE are handed on together, what follows it in later chunks of the transaction, the last
 * one final even when empty. A rolled-back transaction is never decoded by Postgres, so it
 * produces nothing.
 */
import type pg from 'pg';
import { ErrorCode, InternalError, TributaryError } from '../../../errors.ts';
import { componentLogger, type Logger } from '../../../logger.ts';
import { createBackoff, pause } from '../../coordination/backoff.ts';
import { formatLsn, parseLsn } from './lsn.ts';
import { ReplicationSession, type ChunkSession, type ReaderPositions } from './replication-session.ts';
import {
  assertLogicalReplicationAllowed,
  assertPublicationName,
  assertSlotName,
  backendPid,
  blockingBackends,
  cancelBackend,
  dropSlot,
  ensurePublication,
  ensureSlot,
  tryPublishViaPartitionRoot,
} from './replication-setup.ts';
import { createSlotReadings, type SlotFigures, type SlotReadings } from './slot-readings.ts';
import { readerLimits, type ReaderLimits, type WalReaderOptions } from './wal-reader-options.ts';

export type { ChunkSession, WalReaderOptions };

export type WalReaderState = 'starting' | 'streaming' | 'reconnecting' | 'stopped' | 'failed';

/**
 * The slot's figures (`SlotFigures`: lag, retained WAL, `wal_status`, other slots) are those of
 * the last `inspect()`, each null before, while the last one failed or went unanswered, or once it
 * is older than `FIGURES_MAX_AGE_MS` (`slot-readings.ts`): never the figure of before, as if current.
 */
export interface WalReaderStatus extends SlotFigures {
  readonly state: WalReaderState;
  /** Highest WAL position received from the server (change, commit or keepalive), or null. */
  readonly lastReceivedLsn: string | null;
  /** Position confirmed to Postgres (the slot's confirmed_flush_lsn once it has arrived), or null. */
  readonly lastAcknowledgedLsn: string | null;
  /**
   * What is wrong now, or null: while the slot's creation waits for transactions open on the
   * source, which ones; else why the stream ended or the last (re)connect failed, until a connect
   * succeeds (an error a reconnect overcame is not kept); else why the last `inspect()` failed.
   */
  readonly lastError: string | null;
}

export interface WalReader {
  /** Checks and creates what is missing, then resolves once streaming. Rejects (state `failed`) if that fails. */
  start(): Promise<void>;
  /**
   * Closes the connection and timers; does not wait for a `handle` in progress. Cancels a set-up
   * statement in progress (a slot creation waiting for open transactions: no slot is left), so a
   * `start()` still running resolves soon after. Idempotent.
   */
  stop(): Promise<void>;
  status(): WalReaderStatus;
  /**
   * Queries the slot's lag and retained WAL over a normal connection (within `READING_TIMEOUT_MS`,
   * `slot-readings.ts`), then returns `status()`. Rejects when that fails, the figures then unknown.
   */
  inspect(): Promise<WalReaderStatus>;
}

export function createWalReader(options: WalReaderOptions): WalReader {
  return new PostgresWalReader(options);
}

class PostgresWalReader implements WalReader {
  readonly #options: WalReaderOptions;
  readonly #slotName: string;
  readonly #publicationName: string;
  readonly #limits: ReaderLimits;
  readonly #logger: Logger;
  readonly #backoff;
  readonly #positions: ReaderPositions = { confirmed: 0n, received: 0n };
  #state: WalReaderState = 'stopped';
  #started = false;
  #stopping = false;
  readonly #stopController = new AbortController();
  readonly #stopRequested = Promise.withResolvers<void>();
  #stopped: Promise<void> | undefined;
  #session: ReplicationSession | undefined;
  #supervisor: Promise<void> | undefined;
  #slotSeen = false;
  readonly #readings: SlotReadings;
  #lastError: string | null = null;
  /** The backend of the set-up connection while the set-up runs (`stop()` cancels its statement). */
  #setupBackend: number | undefined;
  /** What the slot's creation waits for, while it does. */
  #slotWait: string | undefined;

  constructor(options: WalReaderOptions) {
    this.#options = options;
    this.#slotName = options.slotName;
    this.#publicationName = options.publicationName;
    assertSlotName(this.#slotName);
    assertPublicationName(this.#publicationName);
    this.#limits = readerLimits(options);
    this.#backoff = createBackoff({ initialMs: options.reconnectInitialDelayMs ?? 100, maxMs: options.reconnectMaxDelayMs ?? 5000 });
    this.#logger = componentLogger(options.logger, 'wal-reader', { slot: this.#slotName });
    this.#readings = createSlotReadings({ connections: options.connections, slotName: this.#slotName, ...(options.slotFamily !== undefined && { slotFamily: options.slotFamily }) });
  }

  async start(): Promise<void> {
    if (this.#started) throw new InternalError('WAL_READER_STATE', 'a WAL reader starts only once');
    this.#started = true;
    this.#state = 'starting';
    let session: ReplicationSession;
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
      this.#stopController.abort();
      this.#stopRequested.resolve();
      await this.#cancelSetup();
      if (this.#session) await this.#closeSession(this.#session);
      await this.#supervisor;
      this.#state = 'stopped';
      this.#logger.info('WAL reader stopped');
    })();
    return this.#stopped;
  }

  status(): WalReaderStatus {
    const { confirmed, received } = this.#positions;
    return {
      state: this.#state,
      lastReceivedLsn: received === 0n ? null : formatLsn(received),
      lastAcknowledgedLsn: confirmed === 0n ? null : formatLsn(confirmed),
      ...this.#readings.current(),
      lastError: this.#slotWait ?? this.#lastError ?? this.#readings.error,
    };
  }

  async inspect(): Promise<WalReaderStatus> {
    await this.#readings.read();
    return this.status();
  }

  /** Waits for the stream to end, then reconnects with capped exponential backoff, until stopped. */
  async #supervise(first: ReplicationSession): Promise<void> {
    const stopSignal = this.#stopController.signal;
    let session: ReplicationSession | undefined = first;
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
        await Promise.race([session.drained(), this.#stopRequested.promise]);
      }
      if (this.#stopping) return;
      if (!(await pause(this.#backoff.next(), stopSignal))) return;
      try {
        session = await this.#connect();
        this.#state = 'streaming';
        // Overcome: a status saying `streaming` beside it would read as if it were still so.
        this.#lastError = null;
      } catch (error) {
        session = undefined;
        if (this.#stopping) return;
        this.#recordError(error);
        this.#logger.warn({ err: error }, 'reconnecting the WAL reader failed');
      }
    }
  }

  /** Checks the server, creates what is missing, and opens a stream from the confirmed position. */
  async #connect(): Promise<ReplicationSession> {
    await this.#options.connections.withClient(async (client) => {
      this.#setupBackend = await backendPid(client);
      try {
        await this.#setUp(client);
      } finally {
        this.#setupBackend = undefined;
        this.#slotWait = undefined;
      }
      // stop() may be cancelling this connection's statement right now: thrown, the connection is
      // discarded instead of pooled, where the cancel could hit the next statement run on it.
      if (this.#stopping) throw new TributaryError(ErrorCode.UNAVAILABLE, 'the WAL reader was stopped while connecting');
    });
    await this.#options.onReady?.();
    if (this.#stopping) throw new TributaryError(ErrorCode.UNAVAILABLE, 'the WAL reader was stopped while connecting');
    const session = new ReplicationSession({
      connections: this.#options.connections,
      slotName: this.#slotName,
      publicationName: this.#publicationName,
      handle: this.#options.handle,
      ...this.#limits,
      statusIntervalMs: this.#options.statusIntervalMs ?? 10_000,
      logger: this.#logger,
      positions: this.#positions,
      onConfirmed: () => this.#backoff.reset(),
    });
    this.#session = session;
    try {
      await session.open();
    } finally {
      if (session.closed && this.#session === session) this.#session = undefined;
    }
    return session;
  }

  /** The server's checks, the publication and the slot, on `client` (whose backend is `#setupBackend`). */
  async #setUp(client: pg.ClientBase): Promise<void> {
    await assertLogicalReplicationAllowed(client);
    const publication = await ensurePublication(client, this.#publicationName, typeof this.#options.tables === 'function' ? this.#options.tables() : this.#options.tables);
    if (publication.created) this.#logger.info({ publication: this.#publicationName }, 'publication created');
    else if (!publication.viaRoot && this.#options.ownsPublication === true) await tryPublishViaPartitionRoot(client, this.#publicationName, this.#logger);
    const slot = await this.#whileCreatingSlot(ensureSlot(client, this.#slotName, this.#options.expectExistingSlot === true || this.#slotSeen));
    if (slot.created) {
      this.#logger[slot.recreated ? 'warn' : 'info']({ recreated: slot.recreated }, 'replication slot created');
      try {
        await this.#options.onSlotCreated?.({ recreated: slot.recreated });
      } catch (error) {
        await dropSlot(client, this.#slotName).catch(() => {});
        throw error;
      }
      this.#positions.confirmed = parseLsn(slot.startLsn);
    } else if (!this.#slotSeen || parseLsn(slot.startLsn) > this.#positions.confirmed) {
      // Postgres moves a slot's position only as its readers confirm: ahead of ours, another read it.
      if (this.#slotSeen) await this.#options.onSlotTaken?.();
      this.#positions.confirmed = parseLsn(slot.startLsn);
    }
    this.#slotSeen = true;
  }

  /**
   * Creating a slot waits for every transaction open on the source to end, however long that
   * takes (one left idle in transaction: for ever), while the status said only `starting`: while
   * it waits, the status names the backends it waits for.
   */
  async #whileCreatingSlot<T>(creating: Promise<T>): Promise<T> {
    const timer = setInterval(() => {
      const pid = this.#setupBackend;
      if (pid === undefined) return;
      this.#options.connections
        .withClient((client) => blockingBackends(client, pid))
        .then((pids) => {
          if (this.#setupBackend !== pid) return;
          this.#slotWait =
            pids.length === 0
              ? undefined
              : `waiting for open transactions to create the slot: replication slot "${this.#slotName}" is created once the transactions of backends ${pids.join(', ')} on the source end`;
        })
        .catch(() => undefined);
    }, SLOT_WAIT_CHECK_MS);
    try {
      return await creating;
    } finally {
      clearInterval(timer);
    }
  }

  /** Cancels the set-up statement in progress (a slot creation waiting for open transactions), so that start() ends now. */
  async #cancelSetup(): Promise<void> {
    const pid = this.#setupBackend;
    if (pid === undefined) return;
    await this.#options.connections.withClient((client) => cancelBackend(client, pid)).catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'could not cancel the set-up statement of the stopped WAL reader');
    });
  }

  async #closeSession(session: ReplicationSession): Promise<void> {
    await session.close();
    if (this.#session === session) this.#session = undefined;
  }

  #recordError(error: unknown): void {
    this.#lastError = error instanceof Error ? error.message : String(error);
  }
}

/** How often a slot creation still in progress checks what it waits for, in ms. */
const SLOT_WAIT_CHECK_MS = 1000;
