/**
 * The polling reader of an application's outbox (issue 10, "Polling"): the seed's algorithm made
 * safe for any number of pollers without reordering one entity's events.
 *
 * Rows are split into partitions by a hash of their entity. A poller takes a partition's
 * transaction-scoped advisory lock without waiting (another poller holding it means that partition
 * is being handled: skip it), reads its oldest pending rows FOR UPDATE, routes the valid ones with
 * one `routeMany` in id order, marks them and the poison ones in the same transaction and commits,
 * which releases the lock. SKIP LOCKED alone would let two pollers hand one entity's rows to the
 * router in either order; a partition lock cannot. A crash between routing and COMMIT leaves the
 * rows pending, so they are routed again with the same ids (derived from the outbox and row id).
 * While idle a pass locks every partition it can in one transaction (few round trips: low
 * latency). Behind a backlog, the partitions it is in are taken one per transaction, so pollers
 * share the work, and the others together at most once an interval: a claim reads the pending rows
 * in id order, so one of a partition without rows reads through the whole backlog to find none.
 *
 * "Insert order" is id order, which is commit order for one entity as long as the application
 * writes an entity in one transaction at a time (as it does when it locks the business row). Two
 * transactions writing one entity at once have no order to keep: the later id may commit first.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ErrorCode, sqlStateOf, SqlState, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import type { RawEventInput } from '../events/envelope.ts';
import type { EventRouter } from '../router/event-router.ts';
import { outboxRowOutcome, type OutboxRow, type OutboxRules } from './outbox-row.ts';
import { describeOutboxError, isLockTimeout } from './outbox-errors.ts';
import { createDeadRowTally, type DeadRowTally } from './outbox-store.ts';
import {
  claimBatch,
  deleteProcessed,
  markDead,
  markRouted,
  missingPrivileges,
  outboxCounts,
  outboxTable,
  tryLockPartitions,
  type OutboxCounts,
  type OutboxTable,
} from './outbox-sql.ts';

/** The counters the poller increments; the composition root wires them to Prometheus. */
export interface OutboxCounters {
  routed(count: number): void;
  dead(reason: string): void;
}

export interface OutboxPollerOptions {
  /** The application's database (the outbox's), owned by the caller; the poller opens no connection of its own. */
  readonly pool: pg.Pool;
  /** The outbox table, `name` or `schema.name`. @default 'event_outbox' */
  readonly table?: string;
  /** The outbox's stable identity (the same for every poller of it): event ids and the lock key derive from it. */
  readonly outboxId: string;
  /** The source's application and environment; the tenant comes from each row. */
  readonly scope: { readonly app: string; readonly env: string };
  readonly router: EventRouter;
  readonly logger: Logger;
  /** Rows claimed per partition per pass. @default 100 */
  readonly batchSize?: number;
  /** Wait between passes that found no full batch, in ms. @default 1000 */
  readonly intervalMs?: number;
  /** Partitions the rows are split into by entity hash; every poller of one outbox must use the same number. @default 16 */
  readonly partitions?: number;
  /** Largest payload routed, in bytes of its JSON text; larger rows are set aside as dead. @default 65536 */
  readonly maxPayloadBytes?: number;
  /** Rows without a tenant are set aside as dead. @default false */
  readonly requireTenant?: boolean;
  /** Processed rows are deleted once processed this long ago, in ms (swept at most every 30 s). @default 7 days */
  readonly retentionMs?: number;
  /** @default no counters */
  readonly metrics?: OutboxCounters;
}

export interface OutboxPollerStatus extends OutboxCounts {
  /** The last failure of the loop (cleared by the next successful pass), or a partition waiting on a row lock; null when none. */
  readonly lastError: string | null;
}

export interface OutboxPoller {
  start(): void;
  /** Stops the loop: the batch in flight is committed or left unmarked. Idempotent. */
  stop(): Promise<void>;
  /** One pass (see the class): returns the rows handled (routed or set aside). */
  pollOnce(): Promise<number>;
  /** Deletes rows processed longer than `retentionMs` ago, for at most `RETENTION_SWEEP_BUDGET_MS`; returns how many. */
  sweepRetention(): Promise<number>;
  /**
   * @throws TributaryError UNAVAILABLE when the outbox's database cannot be read, or its last pass
   * failed (the rows can be counted but not routed: a privilege revoked) — the outbox is down then
   * (`tributary_outbox_source_up` 0), not merely reporting an error beside healthy figures.
   */
  status(): Promise<OutboxPollerStatus>;
  /**
   * Rows this poller set aside as dead and not yet written to the durable counts, by reason (which
   * the retention sweep of the table does not delete). Not part of `status()`: a status that comes
   * too late for its report, or does not come, must neither lose them nor hold them back.
   */
  readonly deadRows: Pick<DeadRowTally, 'unwritten' | 'written'>;
}

const RETENTION_SWEEP_EVERY_MS = 30_000;
/** Lock timeout of the claim of a partition found waiting on a row lock, in ms. */
const BLOCKED_RETRY_LOCK_MS = 200;
/** Processed rows deleted by one statement of a retention sweep. */
const RETENTION_BATCH = 1_000;

export function createOutboxPoller(options: OutboxPollerOptions): OutboxPoller {
  return new PartitionedOutboxPoller(options);
}

class PartitionedOutboxPoller implements OutboxPoller {
  readonly #options: OutboxPollerOptions;
  readonly #table: OutboxTable;
  readonly #lockKey: number;
  readonly #batchSize: number;
  readonly #partitions: number;
  readonly #rules: OutboxRules;
  readonly #retentionMs: number;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #lastError: string | null = null;
  /** The last pass failed (`status()` says UNAVAILABLE until one succeeds). */
  #failing = false;
  /**
   * Partitions whose claim waited out `lock_timeout` on a row another session holds: claimed one
   * per transaction until a claim of theirs succeeds, so that row holds up its own partition only.
   */
  readonly #blocked = new Set<number>();
  readonly #deadRows = createDeadRowTally();
  #lastSweep = 0;
  /** Rotates the first partition of a pass, so pollers started together do not all queue on partition 0. */
  #offset = 0;
  /** The partitions behind a backlog: their last claim was a full batch, or had rows in one (see `#pass`). */
  readonly #behind = new Set<number>();
  /** When the partitions not behind were last claimed from while some were. */
  #othersClaimedAt = 0;
  readonly #allPartitions: readonly number[];

  constructor(options: OutboxPollerOptions) {
    this.#options = options;
    this.#table = outboxTable(options.table ?? 'event_outbox');
    this.#lockKey = lockKeyOf(options.outboxId);
    this.#batchSize = options.batchSize ?? 100;
    this.#partitions = options.partitions ?? 16;
    this.#allPartitions = Array.from({ length: this.#partitions }, (_, index) => index);
    this.#rules = {
      outboxId: options.outboxId,
      scope: options.scope,
      maxPayloadBytes: options.maxPayloadBytes ?? 65_536,
      requireTenant: options.requireTenant ?? false,
    };
    this.#retentionMs = options.retentionMs ?? 7 * 24 * 3_600_000;
  }

  start(): void {
    if (this.#loop) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#lastSweep = Date.now();
    this.#loop = this.#run(abort.signal);
  }

  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
  }

  async pollOnce(): Promise<number> {
    return (await this.#pass()).handled;
  }

  async sweepRetention(): Promise<number> {
    return (await this.#sweep()).deleted;
  }

  /** Stops between batches once its budget is spent (`RETENTION_SWEEP_BUDGET_MS`) or the poller is stopping. */
  #sweep(signal?: AbortSignal): Promise<{ deleted: number; more: boolean }> {
    return deleteProcessed(this.#options.pool, this.#table, this.#retentionMs, { batchSize: RETENTION_BATCH, signal });
  }

  get deadRows(): Pick<DeadRowTally, 'unwritten' | 'written'> {
    return this.#deadRows;
  }

  async status(): Promise<OutboxPollerStatus> {
    if (this.#failing) {
      throw new TributaryError(ErrorCode.UNAVAILABLE, `The outbox ${this.#table.name} cannot be routed: ${this.#lastError ?? 'polling failed'}`);
    }
    try {
      const counts = await outboxCounts(this.#options.pool, this.#table);
      return { ...counts, lastError: this.#lastError };
    } catch (error) {
      throw new TributaryError(ErrorCode.UNAVAILABLE, `The outbox ${this.#table.name} cannot be read: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  async #run(signal: AbortSignal): Promise<void> {
    const backoff = createBackoff({ initialMs: 200, maxMs: 5_000, jitterMs: 50 });
    while (!signal.aborted) {
      let full: boolean;
      const started = Date.now();
      try {
        const pass = await this.#pass(signal);
        full = pass.full;
        if (Date.now() - this.#lastSweep >= RETENTION_SWEEP_EVERY_MS) {
          const { deleted, more } = await this.#sweep(signal);
          // Cut short (a large backlog): the next pass sweeps on, after routing a batch in between.
          this.#lastSweep = more ? 0 : Date.now();
          if (deleted > 0) this.#options.logger.debug({ table: this.#table.name, deleted, more }, 'outbox: retention sweep');
        }
        this.#lastError = pass.blocked;
        this.#failing = false;
        backoff.reset();
      } catch (error) {
        // A database that is down or restarting: say so in the status and try again later; never crash.
        this.#lastError = await this.#describe(error);
        this.#failing = true;
        this.#options.logger.warn({ err: error, table: this.#table.name }, 'outbox: poll failed; retrying');
        await pause(backoff.next(), signal);
        continue;
      }
      // A full batch means more is waiting: poll again at once (the seed's tight loop). Otherwise
      // passes start every interval (not an interval after the pass ended), so a row waits
      // interval/2 on average, however long a pass over the partitions takes.
      if (!full) await pause(Math.max(0, (this.#options.intervalMs ?? 1_000) - (Date.now() - started)), signal);
    }
  }

  /**
   * One pass. Idle (no partition behind): every partition it can lock, one transaction — a few
   * round trips, so a row waits little more than the interval's half. Behind a backlog: each
   * partition behind in a transaction of its own, in turn, so several pollers drain in parallel;
   * the others still together, but at most once an interval (their rows wait no longer than idle
   * ones), since a claim of partitions without rows reads through the backlog to find none (a
   * backlog of 300,000 rows in one partition drained at 60 rows/s, each pass reading it 15 times).
   * A partition leaves the backlog when its claim is no longer full.
   */
  async #pass(signal?: AbortSignal): Promise<{ handled: number; full: boolean; blocked: string | null }> {
    let handled = 0;
    let full = false;
    let blocked: string | null = null;
    const intervalMs = this.#options.intervalMs ?? 1_000;
    if (this.#behind.size === 0 || Date.now() - this.#othersClaimedAt >= intervalMs) {
      this.#othersClaimedAt = Date.now();
      const others = this.#allPartitions.filter((partition) => !this.#behind.has(partition) && !this.#blocked.has(partition));
      try {
        const { claimed } = await this.#inTransaction((client) => this.#handlePartitions(client, others));
        handled += claimed.length;
        if (claimed.length >= this.#batchSize) {
          full = true;
          for (const partition of claimed) this.#behind.add(partition);
        }
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        // Rolled back, its locks freed: which partition the locked row is in is not known, so
        // each is claimed alone below, and those that are not blocked leave the set at once.
        for (const partition of others) this.#blocked.add(partition);
      }
    }
    // Last in the pass, each alone and with a short lock timeout: a partition still blocked holds up
    // the pass (and every other partition's next claim) BLOCKED_RETRY_LOCK_MS, not the pool's.
    for (const partition of [...this.#blocked].sort((a, b) => a - b)) {
      if (signal?.aborted) break;
      try {
        const { claimed } = await this.#inTransaction(async (client) => {
          await client.query(`SET LOCAL lock_timeout = ${BLOCKED_RETRY_LOCK_MS}`);
          return this.#handlePartitions(client, [partition]);
        });
        handled += claimed.length;
        this.#blocked.delete(partition);
        if (claimed.length >= this.#batchSize) this.#behind.add(partition);
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        blocked = describeOutboxError(error, `partition ${partition} of ${this.#partitions}`);
        this.#options.logger.warn({ table: this.#table.name, partition }, 'outbox: a partition waits on a row lock held by another session');
      }
    }
    const behind = [...this.#behind].filter((partition) => !this.#blocked.has(partition)).sort((a, b) => a - b);
    const start = this.#offset;
    this.#offset += 1;
    for (let step = 0; step < behind.length; step += 1) {
      // Stopping between partitions: the batch in flight has been committed, the rest stays pending.
      if (signal?.aborted) break;
      const partition = behind[(start + step) % behind.length]!;
      let outcome: { locked: number[]; claimed: number[] };
      try {
        outcome = await this.#inTransaction((client) => this.#handlePartitions(client, [partition]));
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        // Claimed alone from the next pass on, after the others.
        this.#blocked.add(partition);
        blocked = describeOutboxError(error, `partition ${partition} of ${this.#partitions}`);
        continue;
      }
      const { locked, claimed } = outcome;
      handled += claimed.length;
      // Another poller holds it: still behind for all this one knows (dropping it left this poller
      // idle for an interval while the backlog lasted: 2 pollers drained slower than 1).
      if (locked.length === 0) continue;
      if (claimed.length < this.#batchSize) this.#behind.delete(partition);
      else full = true;
    }
    // No full batch in this pass (every partition behind held by other pollers, or drained): wait.
    return { handled, full, blocked };
  }

  /** A failed pass in words; a privilege missing is named (one more query, on a failure only). */
  async #describe(error: unknown): Promise<string> {
    if (sqlStateOf(error) !== SqlState.INSUFFICIENT_PRIVILEGE) return describeOutboxError(error, 'polling failed');
    const missing = await missingPrivileges(this.#options.pool, this.#table, ['SELECT', 'UPDATE', 'DELETE']).catch(() => []);
    const lacking = missing.length > 0 ? `; the login lacks ${missing.join(', ')} on ${this.#table.name}` : '';
    return `${describeOutboxError(error, 'polling failed')}${lacking}`;
  }

  async #inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#options.pool.connect();
    // A connection that dies while checked out (terminated, server restarted) emits 'error'; without
    // a listener that would crash the process. The statement in progress rejects instead.
    const ignore = () => {};
    client.on('error', ignore);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      try {
        const count = await work(client);
        await client.query('COMMIT');
        return count;
      } catch (error) {
        // Nothing is marked: the rows stay pending and come again with the same ids.
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.off('error', ignore);
      // A failed connection (terminated, server restarted) is destroyed rather than reused.
      client.release(broken);
    }
  }

  /** Handles a batch of the oldest pending rows of the partitions it could lock: those, and the partition of each row handled. */
  async #handlePartitions(client: pg.PoolClient, partitions: readonly number[]): Promise<{ locked: number[]; claimed: number[] }> {
    const locked = await tryLockPartitions(client, this.#lockKey, partitions);
    if (locked.length === 0) return { locked, claimed: [] };
    const rows = await claimBatch(client, this.#table, { indexes: locked, count: this.#partitions }, this.#batchSize, this.#rules.maxPayloadBytes);
    if (rows.length === 0) return { locked, claimed: [] };
    const routable: { row: OutboxRow; event: RawEventInput }[] = [];
    const dead: { row: OutboxRow; reason: string }[] = [];
    for (const row of rows) {
      const event = outboxRowOutcome(row, this.#rules, (error) => {
        this.#options.logger.error({ err: error, table: this.#table.name, id: row.id }, 'outbox: a row could not be made an event');
      });
      if (typeof event === 'string') dead.push({ row, reason: event });
      else routable.push({ row, event });
    }
    if (routable.length > 0) await this.#options.router.routeMany(routable.map((entry) => entry.event));
    await markRouted(client, this.#table, routable.map((entry) => entry.row.id));
    for (const { row, reason } of dead) {
      await markDead(client, this.#table, row.id, reason);
      this.#options.logger.warn({ table: this.#table.name, id: row.id, reason }, 'outbox: row set aside as dead');
    }
    // Counted before COMMIT: a commit that then fails re-routes the rows, which counts them again (at least once).
    if (routable.length > 0) this.#options.metrics?.routed(routable.length);
    for (const { reason } of dead) {
      this.#options.metrics?.dead(reason);
      this.#deadRows.add(reason);
    }
    return { locked, claimed: rows.map((row) => row.partition) };
  }
}

/** The outbox's advisory lock key (int4): the same in every process for one outbox id. */
function lockKeyOf(outboxId: string): number {
  return createHash('sha256').update(`tributary-outbox:${outboxId}`).digest().readInt32BE(0);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
