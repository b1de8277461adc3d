/**
 * The flushed part of a hot-topics window, read from the hour rollup where it can be: an hour's
 * row is the sum of the minutes flushed into it (each added in the transaction that marks it
 * flushed: `minute-flusher.ts`), so a window's flushed minutes are its whole hours' rows — the hour
 * being filled included, which holds exactly its minutes flushed so far — plus, at the window's
 * start, either the minutes of the first hour that are in the window, or that hour's row minus
 * those that are not, whichever reads fewer rows. A 1 h window thus reads two hour rows and at
 * most 30 minute rows per topic, rather than 61 minute rows.
 *
 * Counters and latency histograms are read apart: the counters of every topic (to rank them),
 * then the histograms of the topics answered only — a histogram is ~50 buckets to unnest and sum,
 * the costly part, and only a latency ranking needs them all.
 *
 * The flushed minutes, the counters and the histograms must come from one snapshot (the reader
 * runs them in one REPEATABLE READ transaction): a minute flushed in between would be in its
 * hour's row but not in the list, and counted again from the minute store.
 */
import type { Queryable } from '../../db/database.ts';
import { COLUMN, COLUMNS } from './stats-store.ts';
import { COUNTERS, emptyCounts, type TopicCounts } from './topic-counts.ts';

export const HOUR_MS = 3_600_000;

/** From `from` (included) to `to` (excluded), in ms since the epoch; empty when equal. */
export interface TimeRange {
  readonly from: number;
  readonly to: number;
}

/**
 * What to add up for a window's flushed minutes. Every minute row is of a flushed minute (rows are
 * written by the flush), so ranges of start times name exactly the flushed minutes in them — and
 * ranges are what an index on (…, start_time) reads without a row too many.
 */
export interface WindowPlan {
  /** Hour rows from this hour on are added whole. */
  readonly hoursFrom: number;
  /** Minute rows added: the window's minutes of its first hour, when that hour's row is not used. */
  readonly minutes: TimeRange;
  /** Minute rows taken back out: the first hour's minutes before the window, when its row is used. */
  readonly minus: TimeRange;
}

/**
 * The plan for the flushed minutes from `from` on (`flushed` must list every flushed minute from
 * the start of `from`'s hour: those before `from` are what that hour's row holds beyond the
 * window). Hours after the first are all in the window; the first is its row minus the minutes
 * before the window, or the minutes in the window, whichever is fewer rows per topic.
 */
export function planWindow(flushed: Iterable<number>, from: number): WindowPlan {
  const hour = planStart(from);
  const next = hour + HOUR_MS;
  let inside = 0;
  let before = 0;
  for (const minute of flushed) {
    if (minute >= from && minute < next) inside += 1;
    else if (minute >= hour && minute < from) before += 1;
  }
  const none = { from, to: from };
  return 1 + before < inside ? { hoursFrom: hour, minutes: none, minus: { from: hour, to: from } } : { hoursFrom: next, minutes: { from, to: next }, minus: none };
}

/** The start of `from`'s hour: where the flushed minutes a plan needs begin. */
export function planStart(from: number): number {
  return from - (from % HOUR_MS);
}

export interface WindowRowsQuery {
  readonly app: string;
  readonly env: string;
  readonly plan: WindowPlan;
}

/**
 * The rows of a plan with their sign, `columns` of each: hour rows and minute rows added, the
 * minus range's subtracted. Parameters $1 app, $2 env, $3 hours from, $4–$5 minutes, $6–$7 minus;
 * each part a range of an index on (app, env, start_time) — the minute table's, 0032's on the
 * hours — or of the primary key (app, env, topic, tenant, start_time) for given topics.
 */
function signedRows(columns: string, where: string): string {
  return `SELECT 1 AS sign, ${columns} FROM topic_stats_hour s WHERE s.app = $1 AND s.env = $2 AND s.start_time >= $3::timestamptz ${where}
    UNION ALL SELECT 1 AS sign, ${columns} FROM topic_stats_minute s WHERE s.app = $1 AND s.env = $2 AND s.start_time >= $4::timestamptz AND s.start_time < $5::timestamptz ${where}
    UNION ALL SELECT -1 AS sign, ${columns} FROM topic_stats_minute s WHERE s.app = $1 AND s.env = $2 AND s.start_time >= $6::timestamptz AND s.start_time < $7::timestamptz ${where}`;
}

function planParams(query: WindowRowsQuery): unknown[] {
  const { hoursFrom, minutes, minus } = query.plan;
  return [query.app, query.env, ...[hoursFrom, minutes.from, minutes.to, minus.from, minus.to].map((time) => new Date(time))];
}

/** One topic of one tenant ('' for application-wide events) over a window. */
export interface WindowTopic {
  readonly tenant: string;
  readonly topic: string;
  readonly counts: TopicCounts;
}

/** Every topic's counters over the plan (latency left out); only one tenant's when `tenant` is given. */
export async function windowCounters(db: Queryable, query: WindowRowsQuery & { readonly tenant: string | undefined }): Promise<WindowTopic[]> {
  const columns = `s.tenant, s.topic, ${COLUMNS.map((column) => `s.${column}`).join(', ')}`;
  const { rows } = await db.query<Record<string, unknown> & { tenant: string; topic: string }>(
    `SELECT tenant, topic, ${COLUMNS.map((column) => `sum(sign * ${column})::float8 AS ${column}`).join(', ')}
       FROM (${signedRows(columns, 'AND ($8::text IS NULL OR s.tenant = $8)')}) source
      GROUP BY tenant, topic`,
    [...planParams(query), query.tenant ?? null],
  );
  return rows.map((row) => {
    const counts = emptyCounts();
    for (const counter of COUNTERS) counts[counter] = Number(row[COLUMN[counter]]);
    return { tenant: row.tenant, topic: row.topic, counts };
  });
}

/**
 * The latency histograms of some topics over the plan, by `histogramKey`; a topic without live
 * deliveries in the window (its buckets summing to nothing) is left out, as no row would hold one.
 */
export async function windowLatency(db: Queryable, query: WindowRowsQuery & { readonly topics: readonly { readonly tenant: string; readonly topic: string }[] }): Promise<Map<string, number[]>> {
  const histograms = new Map<string, number[]>();
  if (query.topics.length === 0) return histograms;
  // Joined to the topics asked for: each is found by the primary key (app, env, topic, tenant, start_time).
  const where = `AND (s.tenant, s.topic) IN (SELECT * FROM unnest($8::text[], $9::text[]))`;
  const { rows } = await db.query<{ tenant: string; topic: string; latency: number[] }>(
    `SELECT tenant, topic, array_agg(count ORDER BY position) AS latency FROM (
       SELECT source.tenant, source.topic, u.position, sum(source.sign * u.count)::float8 AS count
         FROM (${signedRows('s.tenant, s.topic, s.latency', where)}) source, unnest(source.latency) WITH ORDINALITY AS u(count, position)
        GROUP BY source.tenant, source.topic, u.position) per_position
     GROUP BY tenant, topic`,
    [...planParams(query), query.topics.map((entry) => entry.tenant), query.topics.map((entry) => entry.topic)],
  );
  for (const row of rows) {
    const latency = row.latency.map(Number);
    if (latency.some((count) => count !== 0)) histograms.set(histogramKey(row.tenant, row.topic), latency);
  }
  return histograms;
}

export function histogramKey(tenant: string, topic: string): string {
  return JSON.stringify([tenant, topic]);
}
