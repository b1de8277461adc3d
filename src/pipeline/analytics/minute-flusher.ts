/**
 * Writes closed minutes from the minute store to Postgres, exactly once however many workers run:
 * under a transaction-scoped advisory lock, a minute is marked flushed (`topic_stats_flushed`)
 * in the same transaction that inserts its rows and adds them into its hour and day, and only then
 * removed from the store. A worker that dies between commit and removal leaves data the next
 * worker finds already marked: removed, not written twice. A minute is closed once its end plus a
 * grace (the longest push interval and some slack) has passed, so every instance's last push is in.
 * Each flush then prunes minute rows, hour rows and day rows past their retentions.
 * After writing, the minute is routed on `analytics.minutes` for live screens, before it leaves
 * the store: the next flush only removes a minute it finds marked, so a removal that failed
 * (Redis unreachable) must not be what stands between a written minute and its routing.
 *
 * A row Postgres refuses for what it holds (SQLSTATE classes 22/23/54, `minute-refusals.ts`: a
 * NUL in a tenant, a value out of range) does not hold the flush up: its minute is written again
 * row by row, the refused rows set aside (logged at error, counted in `setAsideRows`), and should
 * the minute itself be refused it is set aside whole; the later minutes are flushed all the same.
 * An outage (anything else) still stops the flush at that minute: the next flush retries it first.
 */
import type { Database } from '../../db/database.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { topicMinutesEvent, type TopicMinute } from '../events/analytics-event.ts';
import type { RawEventInput } from '../events/envelope.ts';
import type { EventRouter } from '../router/event-router.ts';
import { isContentRefusal, writeRowsOneByOne, type RefusedRow } from './minute-refusals.ts';
import type { MinuteStore } from './minute-store.ts';
import { addToWindow, insertMinuteRows, markMinuteFlushed, pruneMinutes, pruneWindows, statsRowsOf, type StatsRow } from './stats-store.ts';
import { MINUTE_MS, OTHER_TOPIC_KEY } from './topic-counts.ts';

export interface MinuteFlusher {
  /** Flushes every closed minute, then prunes; resolves with the minutes this call wrote. */
  flush(options?: FlushOptions): Promise<number[]>;
  /** Rows set aside since the start because Postgres refused what they hold (a whole minute counts its rows). */
  readonly setAsideRows: number;
}

export interface FlushOptions {
  /**
   * After a minute's end, how long pushes for it may still arrive, in ms: 0 for the last flush of
   * a store whose only pusher has made its last push (the embedded mode at shutdown).
   * @default the flusher's `graceMs`
   */
  readonly graceMs?: number;
}

export interface MinuteFlusherOptions {
  readonly db: Database;
  readonly store: MinuteStore;
  readonly router: Pick<EventRouter, 'routeMany'>;
  readonly logger: Logger;
  /** After a minute's end, how long pushes for it may still arrive, in ms. */
  readonly graceMs: number;
  /** Minute rows older than this are deleted, in ms. */
  readonly retentionMs: number;
  /** Hour rows older than this are deleted, in ms. @default 90 days (ANALYTICS_HOUR_RETENTION_DAYS) */
  readonly hourRetentionMs?: number;
  /** Day rows older than this are deleted, in ms. @default 730 days (ANALYTICS_DAY_RETENTION_DAYS) */
  readonly dayRetentionMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/** Serializes flushes across workers (any fixed bigint, distinct from the other advisory locks). */
const FLUSH_LOCK_KEY = 7_231_845_012;

/** Topic rows per routed `analytics.minute` event (a topic's tenants are never split). */
const TOPICS_PER_EVENT = 200;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const DEFAULT_HOUR_RETENTION_MS = 90 * DAY_MS;
const DEFAULT_DAY_RETENTION_MS = 730 * DAY_MS;

export function createMinuteFlusher(options: MinuteFlusherOptions): MinuteFlusher {
  const { db, store } = options;
  const now = options.now ?? Date.now;
  const logger = componentLogger(options.logger, 'analytics');

  let setAsideRows = 0;

  /** Writes the minute in one transaction; `oneByOne`: each row under its savepoint, the refused ones set aside. */
  const writeMinute = (minute: number, rows: readonly StatsRow[], oneByOne: boolean) => {
    const start = new Date(minute);
    const windows = { hour: new Date(minute - (minute % HOUR_MS)), day: new Date(minute - (minute % DAY_MS)) };
    return db.transaction(async (tx) => {
      const { rows: locked } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [FLUSH_LOCK_KEY]);
      if (locked[0]?.locked !== true) return { outcome: 'busy' as const };
      if (!(await markMinuteFlushed(tx, start))) return { outcome: 'already' as const };
      if (oneByOne) return { outcome: 'written' as const, ...(await writeRowsOneByOne(tx, start, windows, rows)) };
      await insertMinuteRows(tx, start, rows);
      await addToWindow(tx, 'hour', windows.hour, rows);
      await addToWindow(tx, 'day', windows.day, rows);
      return { outcome: 'written' as const, written: rows, refused: [] };
    });
  };

  const reportRefused = (start: Date, refused: readonly RefusedRow[]) => {
    for (const { row, state, message } of refused) {
      setAsideRows += 1;
      logger.error(
        { minute: start.toISOString(), app: row.app, env: row.env, tenant: row.tenant, topic: row.topic, sqlState: state, reason: message },
        'analytics minute row refused by the database for its content; set aside (its counts are dropped), the flush goes on',
      );
    }
  };

  const flushMinute = async (minute: number): Promise<'written' | 'already' | 'busy'> => {
    const topics = await store.read(minute);
    const rows = statsRowsOf(topics);
    const start = new Date(minute);
    let result;
    try {
      result = await writeMinute(minute, rows, false);
    } catch (error) {
      if (!isContentRefusal(error)) throw error;
      // One row's content refused the minute's statements: the minute again, row by row.
      result = await writeMinute(minute, rows, true);
    }
    const { outcome } = result;
    if (outcome === 'busy') return outcome;
    if (outcome === 'written') {
      reportRefused(start, result.refused);
      await announce(start, result.written);
    }
    // Written: only what was written goes; a push since the read stays, and the next flush finds
    // it late (logged below). Already flushed: everything here came late.
    await store.remove(minute, outcome === 'written' ? topics : undefined);
    if (outcome === 'already' && rows.length > 0) {
      logger.warn({ minute: start.toISOString(), topics: rows.length }, 'analytics counts arrived after their minute was flushed; dropped');
    }
    return outcome;
  };

  /** Routes the minute per app/env; best-effort (the rows are written whatever happens here). */
  const announce = async (minute: Date, rows: readonly StatsRow[]) => {
    const byEnvironment = new Map<string, StatsRow[]>();
    for (const row of rows) {
      if (row.topic === OTHER_TOPIC_KEY && row.app === '') continue;
      const key = JSON.stringify([row.app, row.env]);
      let list = byEnvironment.get(key);
      if (!list) byEnvironment.set(key, (list = []));
      list.push(row);
    }
    const events: RawEventInput[] = [];
    for (const list of byEnvironment.values()) {
      list.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
      let chunk: TopicMinute[] = [];
      list.forEach((row, index) => {
        chunk.push(topicMinuteOf(row));
        const next = list[index + 1];
        if (next === undefined || (chunk.length >= TOPICS_PER_EVENT && next.topic !== row.topic)) {
          events.push(topicMinutesEvent({ app: row.app, env: row.env, minute, topics: chunk }));
          chunk = [];
        }
      });
    }
    if (events.length === 0) return;
    try {
      await options.router.routeMany(events);
    } catch (error) {
      logger.warn({ err: error, minute: minute.toISOString() }, 'flushed analytics minute could not be routed for live screens');
    }
  };

  const setAsideMinute = async (minute: number, error: unknown) => {
    const rows = statsRowsOf(await store.read(minute));
    setAsideRows += rows.length;
    logger.error({ err: error, minute: new Date(minute).toISOString(), topics: rows.length }, 'analytics minute refused by the database for its content; set aside (its counts are dropped), the flush goes on');
    await store.remove(minute);
  };

  return {
    get setAsideRows() {
      return setAsideRows;
    },
    async flush(flushOptions = {}) {
      const time = now();
      const graceMs = flushOptions.graceMs ?? options.graceMs;
      const closed = (await store.minutes()).filter((minute) => minute + MINUTE_MS + graceMs <= time);
      const written: number[] = [];
      for (const minute of closed) {
        let outcome;
        try {
          outcome = await flushMinute(minute);
        } catch (error) {
          // An outage stops here (the next flush retries this minute first); a refusal of the
          // minute itself for its content would stop every later one for ever: it is set aside.
          if (!isContentRefusal(error)) throw error;
          await setAsideMinute(minute, error);
          continue;
        }
        // Another worker is flushing: it takes the rest too.
        if (outcome === 'busy') break;
        if (outcome === 'written') written.push(minute);
      }
      const pruned = await pruneMinutes(db, new Date(time - options.retentionMs));
      if (pruned > 0) logger.debug({ rows: pruned }, 'old analytics minutes pruned');
      // By the flush's clock, as the minutes. A batch each per flush: a first flush after an
      // upgrade, years of hours behind it, does not hold the tables in one long statement.
      const hours = await pruneWindows(db, 'hour', new Date(time - (options.hourRetentionMs ?? DEFAULT_HOUR_RETENTION_MS)));
      const days = await pruneWindows(db, 'day', new Date(time - (options.dayRetentionMs ?? DEFAULT_DAY_RETENTION_MS)));
      if (hours + days > 0) logger.debug({ hours, days }, 'old analytics hours and days pruned');
      return written;
    },
  };
}

function topicMinuteOf(row: StatsRow): TopicMinute {
  const { counts } = row;
  return {
    topic: row.topic,
    tenant: row.tenant === '' ? null : row.tenant,
    eventsDatabase: counts.eventsDatabase,
    eventsSync: counts.eventsSync,
    eventsSocket: counts.eventsSocket,
    eventsSystem: counts.eventsSystem,
    deliveries: counts.deliveries,
    bytes: counts.bytes,
    webhookDelivered: counts.webhookDelivered,
    webhookFailed: counts.webhookFailed,
    resyncs: counts.resyncs,
    latency: counts.latency ?? [],
  };
}
