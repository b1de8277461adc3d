/**
 * One replication connection of the WAL reader (`wal-reader.ts` owns the rules; this file keeps
 * them for one connection): it assembles transactions from the decoded messages, hands them to
 * `handle` in commit order, in chunks bounded by count and bytes, stops reading while the chunks in
 * `handle` are at their bounds, and confirms each transaction's end once it and every earlier one
 * are handled. After the session is closed nothing of it may call `handle` or confirm.
 */
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { ErrorCode, TributaryError } from '../../../errors.ts';
import type { Logger } from '../../../logger.ts';
import type { TableTruncate, TransactionChunk } from '../row-change.ts';
import { formatLsn, parseLsn } from './lsn.ts';
import { ObservedPgoutputPlugin, addChange, openTransaction, protocolError, type OpenTransaction } from './pgoutput-decode.ts';
import type { SourceConnections } from './source-connections.ts';

/**
 * The session a chunk came from, as `handle` sees it. A failed transaction is received again
 * after the reconnect, followed by every later one: a later transaction of the same row routed by
 * this session in the meantime would overtake it (the row would end at the older version). So once
 * the session ends, nothing more of it may be routed.
 */
export interface ChunkSession {
  /** Aborted once the session ended: closed, or a handler failed. Check it right before routing. */
  readonly signal: AbortSignal;
  /**
   * Ends the session at once with `error`, as a rejected `handle` does some ticks later: a handler
   * calls it where it fails, so that the next transaction's check already sees the signal aborted.
   */
  fail(error: unknown): void;
}

/** The reader's positions, shared by its successive sessions. */
export interface ReaderPositions {
  /** Everything before this position is handled (and confirmed); 0 until the slot is known. */
  confirmed: bigint;
  /** Highest position received (change, commit or keepalive). */
  received: bigint;
}

export interface SessionSettings {
  readonly connections: SourceConnections;
  readonly slotName: string;
  readonly publicationName: string;
  readonly handle: (chunk: TransactionChunk, session: ChunkSession) => Promise<void>;
  readonly maxChunkChanges: number;
  /** In bytes, as `ObservedPgoutputPlugin.sizeOf` estimates them (see `WalReaderOptions`). */
  readonly maxChunkBytes: number;
  readonly maxPendingTransactions: number;
  /** In bytes, likewise: the chunks handed to `handle` and not yet settled. */
  readonly maxPendingBytes: number;
  /** In ms. */
  readonly statusIntervalMs: number;
  readonly logger: Logger;
  readonly positions: ReaderPositions;
  /** A position was confirmed: the connection works (the reader resets its backoff). */
  readonly onConfirmed: () => void;
}

/**
 * Status intervals in a row with nothing at all from the server, while the stream is not paused,
 * after which the connection counts as dead. Every interval's status update asks for a keepalive,
 * which a live server sends at once; a path that went silent without closing (a dead NAT entry, a
 * frozen host) would otherwise hold the socket open until the kernel gives up (~15 min). Counted in
 * timer ticks, not wall time, so that a stalled event loop (data waiting unread) is not taken for it.
 */
export const SILENT_STATUS_INTERVALS = 3;

interface PendingTransaction {
  /** Where the transaction's commit record ends: what is confirmed once it and all before it are handled. */
  readonly endLsn: bigint;
  /** Settles (never rejects) when its `handle` settled. */
  readonly settled: Promise<void>;
  handled: boolean;
}

export class ReplicationSession {
  readonly #settings: SessionSettings;
  readonly #service: LogicalReplicationService;
  readonly #plugin: ObservedPgoutputPlugin;
  readonly #ended = new AbortController();
  /** What `handle` gets with every chunk of this session. */
  readonly #chunkSession: ChunkSession;
  /** Resolves (never rejects) when the stream ends, with the error that ended it if any. */
  ended: Promise<Error | undefined> = Promise.resolve(undefined);
  /** What ended the session from our side (a failed `handle`, a decoding fault), if anything. */
  error: unknown;
  closed = false;
  #processed = 0;
  #transaction: OpenTransaction | undefined;
  /** The message being decoded/handled; never rejects. */
  #inFlight: Promise<void> | undefined;
  /** Committed transactions handed to `handle` and not yet confirmed, oldest first. */
  #pending: PendingTransaction[] = [];
  /** The size of the open transaction's changes not yet handed on (`sizeOf`). */
  #chunkBytes = 0;
  /** The size of the chunks handed to `handle` whose promise has not settled. */
  #handlingBytes = 0;
  #statusTimer: NodeJS.Timeout | undefined;
  /** Something (data or keepalive) arrived since the last status tick. */
  #heard = false;
  /** Status ticks in a row with nothing heard while the stream was not paused. */
  #silentTicks = 0;

  constructor(settings: SessionSettings) {
    this.#settings = settings;
    this.#service = new LogicalReplicationService(
      settings.connections.replicationConfig(),
      // See wal-reader.ts: never acknowledge what was only received.
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    this.#plugin = new ObservedPgoutputPlugin({ protoVersion: 1, publicationNames: [settings.publicationName] }, (error) => this.fail(error));
    this.#chunkSession = { signal: this.#ended.signal, fail: (error) => this.fail(error) };
  }

  /** Opens the stream from the confirmed position; resolves once it streams, rejects (closed) if it cannot. */
  async open(): Promise<void> {
    const { logger, positions } = this.#settings;
    const service = this.#service;
    service.on('error', (error) => logger.debug({ err: error }, 'replication connection error'));
    service.on('heartbeat', (lsn, _timestamp, shouldRespond) => this.#onKeepalive(lsn, shouldRespond));
    service.on('data', (lsn: string, message: Pgoutput.Message) => this.#onData(lsn, message));
    const started = new Promise<void>((resolve) => service.on('start', () => resolve()));
    const from = formatLsn(positions.confirmed);
    this.ended = service.subscribe(this.#plugin, this.#settings.slotName, from).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
    const endedEarly = this.ended.then((error) => {
      throw error ?? new Error('the replication stream ended before it started');
    });
    try {
      await Promise.race([started, endedEarly]);
    } catch (error) {
      await this.close();
      throw error;
    }
    endedEarly.catch(() => {});
    this.#statusTimer = setInterval(() => this.#onStatusTick(), this.#settings.statusIntervalMs);
    this.#statusTimer.unref();
    logger.info({ from }, 'streaming');
  }

  /** Settles when every handler this session started has settled. */
  drained(): Promise<unknown> {
    return Promise.all([this.#inFlight, ...this.#pending.map((entry) => entry.settled)]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.#ended.abort(new TributaryError(ErrorCode.UNAVAILABLE, 'the replication stream was closed'));
    clearInterval(this.#statusTimer);
    await this.#service.stop().catch((error: unknown) => this.#settings.logger.debug({ err: error }, 'closing the replication connection failed'));
  }

  /** Ends the session after an error; the reader reconnects from the confirmed position. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.error = error;
    this.closed = true;
    this.#ended.abort(error);
    clearInterval(this.#statusTimer);
    void this.#service.stop().catch(() => {});
  }

  async #onData(lsn: string, message: Pgoutput.Message): Promise<void> {
    if (this.closed) return;
    this.#heard = true;
    const work = this.#decode(parseLsn(lsn), message);
    this.#inFlight = work.then(
      () => {},
      () => {},
    );
    try {
      await work;
    } catch (error) {
      this.fail(error);
    } finally {
      this.#processed += 1;
      this.#inFlight = undefined;
    }
  }

  async #decode(lsn: bigint, message: Pgoutput.Message): Promise<void> {
    this.#noteReceived(lsn);
    switch (message.tag) {
      case 'begin':
        if (this.#transaction) throw protocolError('BEGIN inside a transaction');
        this.#transaction = openTransaction(message);
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const transaction = this.#transaction;
        if (!transaction) throw protocolError(`${message.tag} outside a transaction`);
        // The changes so far are handed on before the one that would take them past either bound:
        // only when another change follows, so the final chunk is never empty (but after a
        // TRUNCATE, which ends a chunk of its own). A change larger than maxChunkBytes goes alone.
        const size = this.#plugin.sizeOf(message);
        const count = transaction.changes.length;
        if (count >= this.#settings.maxChunkChanges || (count > 0 && this.#chunkBytes + size > this.#settings.maxChunkBytes)) await this.#deliver(transaction, false);
        addChange(transaction, message, formatLsn(lsn));
        this.#chunkBytes += size;
        return;
      }
      case 'truncate': {
        const transaction = this.#transaction;
        if (!transaction) throw protocolError('TRUNCATE outside a transaction');
        // The changes before it and the TRUNCATE, in one chunk: what follows it comes after it.
        transaction.truncated = true;
        const tables = message.relations.map((relation) => ({ schema: relation.schema, name: relation.name }));
        await this.#deliver(transaction, false, { lsn: formatLsn(lsn), tables });
        return;
      }
      case 'commit': {
        const transaction = this.#transaction;
        if (!transaction) throw protocolError('COMMIT outside a transaction');
        if (message.commitEndLsn === null) throw protocolError('COMMIT without an end LSN');
        const handled = transaction.changes.length > 0 || transaction.truncated ? this.#deliver(transaction, true) : Promise.resolve();
        this.#transaction = undefined;
        this.#track(parseLsn(message.commitEndLsn), handled);
        // Backpressure: at most so many transactions, and so many bytes of chunks, in the handler at
        // once. Nothing more is read (the library pauses the socket) until the oldest settles; its
        // settling shifts every handled one off the head, so pending[0] is always one still running
        // (or the session failed: closed).
        while (!this.closed && this.#overPending()) await this.#pending[0]!.settled;
        return;
      }
      default:
        // relation (the library keeps the columns, including ones added mid-stream), type, origin.
        return;
    }
  }

  #overPending(): boolean {
    const { maxPendingTransactions, maxPendingBytes } = this.#settings;
    return this.#pending.length > 0 && (this.#pending.length >= maxPendingTransactions || this.#handlingBytes >= maxPendingBytes);
  }

  /** Hands on the changes decoded so far (and the TRUNCATE that ends them, if one does). */
  async #deliver(transaction: OpenTransaction, final: boolean, truncate?: TableTruncate): Promise<void> {
    if (this.closed) throw new TributaryError(ErrorCode.UNAVAILABLE, 'the replication stream was closed');
    const { xid, commitLsn, commitTime, changes } = transaction;
    const bytes = this.#chunkBytes;
    transaction.changes = [];
    this.#chunkBytes = 0;
    // Counted synchronously, before the commit's back-pressure check looks.
    this.#handlingBytes += bytes;
    try {
      await this.#settings.handle({ xid, commitLsn, commitTime, changes, ...(truncate && { truncate }), final }, this.#chunkSession);
    } finally {
      this.#handlingBytes -= bytes;
    }
  }

  /** Confirms a transaction's end once it and every earlier one are handled; a failure ends the session. */
  #track(endLsn: bigint, handled: Promise<void>): void {
    const entry: PendingTransaction = {
      endLsn,
      handled: false,
      settled: handled.then(
        () => {
          entry.handled = true;
          let confirmable: bigint | undefined;
          while (this.#pending[0]?.handled) confirmable = this.#pending.shift()!.endLsn;
          if (confirmable !== undefined) this.#confirm(confirmable);
        },
        (error: unknown) => this.fail(error),
      ),
    };
    this.#pending.push(entry);
  }

  #onKeepalive(lsn: string, shouldRespond: boolean): void {
    if (this.closed) return;
    this.#heard = true;
    const walEnd = parseLsn(lsn);
    this.#noteReceived(walEnd);
    // Everything the server sent before this keepalive has been handled: the WAL up to its end
    // holds nothing more for us (only unpublished tables or other databases).
    const idle = this.#plugin.received === this.#processed && this.#transaction === undefined && this.#pending.length === 0;
    if (idle && walEnd > this.#settings.positions.confirmed) this.#confirm(walEnd);
    else if (shouldRespond) this.#sendStatus(false);
  }

  /** Ends a session whose server stopped answering (see {@link SILENT_STATUS_INTERVALS}), else asks it for a keepalive. */
  #onStatusTick(): void {
    // A message received and not yet processed: the library pauses the socket until its queue is
    // empty (flow control), so keepalives wait unread in it — that silence is ours, not the server's.
    const paused = this.#plugin.received !== this.#processed;
    // No position yet: no status update (and so no keepalive request) is sent, see #sendStatus.
    const asking = this.#settings.positions.confirmed !== 0n;
    this.#silentTicks = this.#heard || paused || !asking ? 0 : this.#silentTicks + 1;
    this.#heard = false;
    if (this.#silentTicks >= SILENT_STATUS_INTERVALS) {
      const silentMs = this.#silentTicks * this.#settings.statusIntervalMs;
      // The pooled connections, which the reconnect uses first, went the same way most likely.
      this.#settings.connections.retirePooledConnections();
      this.fail(new TributaryError(ErrorCode.UNAVAILABLE, `the replication connection has been silent for ${silentMs} ms`));
      return;
    }
    this.#sendStatus(true);
  }

  #confirm(position: bigint): void {
    if (this.closed) return;
    const { positions } = this.#settings;
    if (position > positions.confirmed) {
      positions.confirmed = position;
      this.#settings.onConfirmed();
    }
    this.#sendStatus(false);
  }

  /** A standby status update with the confirmed position; `ping` asks the server for a keepalive. */
  #sendStatus(ping: boolean): void {
    const confirmed = this.#settings.positions.confirmed;
    if (this.closed || confirmed === 0n) return;
    // The library reports the LSN it is given plus one, as the first byte not yet confirmed.
    this.#service
      .acknowledge(formatLsn(confirmed - 1n), ping)
      .catch((error: unknown) => this.#settings.logger.debug({ err: error }, 'sending the standby status failed'));
  }

  #noteReceived(lsn: bigint): void {
    if (lsn > this.#settings.positions.received) this.#settings.positions.received = lsn;
  }
}
