/**
 * The analytics tables (`migrations/0008_topic_stats.sql`): one function per SQL statement.
 * Counts travel as float8 (exact for whole numbers below 2^53; `pg` returns int8 as text) and
 * latency histograms as arrays summed element by element in SQL, so no statement moves more
 * rows to the process than it answers with.
 */
import type { Queryable } from '../../db/database.ts';
import { parseStreamKey } from '../stream.ts';
import { COUNTERS, emptyCounts, mergeCounts, OTHER_TOPIC_KEY, type Counter, type TopicCounts } from './topic-counts.ts';

export type Granularity = 'minute' | 'hour' | 'day';

/** One topic's counts in one window, where it lives. */
export interface StatsRow {
  readonly app: string;
  readonly env: string;
  /** '' for application-wide events. */
  readonly tenant: string;
  readonly topic: string;
  readonly counts: TopicCounts;
}

/** The SQL column of each counter. */
export const COLUMN: Readonly<Record<Counter, string>> = {
  eventsDatabase: 'events_database',
  eventsSync: 'events_sync',
  eventsSocket: 'events_socket',
  eventsSystem: 'events_system',
  deliveries: 'deliveries',
  bytes: 'bytes',
  webhookDelivered: 'webhook_delivered',
  webhookFailed: 'webhook_failed',
  resyncs: 'resyncs',
};
export const COLUMNS = COUNTERS.map((counter) => COLUMN[counter]);

const TABLE: Readonly<Record<Granularity, string>> = { minute: 'topic_stats_minute', hour: 'topic_stats_hour', day: 'topic_stats_day' };

/** Rows inserted per statement. */
const INSERT_CHUNK = 2_000;

/**
 * Sums the counters and latency histograms of `source` (a query with the counter columns,
 * `latency` and the `keys`) per `keys`; answers with the keys, the counters and `latency`.
 */
function aggregate(source: string, keys: readonly string[]): string {
  const list = keys.join(', ');
  return `WITH source AS (${source}),
    sums AS (SELECT ${list}, ${COLUMNS.map((column) => `sum(${column})::float8 AS ${column}`).join(', ')} FROM source GROUP BY ${list}),
    latency AS (
      SELECT ${list}, array_agg(count ORDER BY position) AS latency FROM (
        SELECT ${keys.map((key) => `source.${key}`).join(', ')}, u.position, sum(u.count)::float8 AS count
          FROM source, unnest(source.latency) WITH ORDINALITY AS u(count, position)
         GROUP BY ${keys.map((key) => `source.${key}`).join(', ')}, u.position) per_position
      GROUP BY ${list})
    SELECT sums.*, coalesce(latency.latency, '{}') AS latency FROM sums LEFT JOIN latency USING (${list})`;
}

type AggregateRow = Record<string, unknown> & { latency: number[] };

function countsOf(row: AggregateRow): TopicCounts {
  const counts = emptyCounts();
  for (const counter of COUNTERS) counts[counter] = Number(row[COLUMN[counter]]);
  counts.latency = row.latency.length > 0 ? row.latency.map(Number) : undefined;
  return counts;
}

/** Marks a minute flushed; false when it already was (another worker, or an earlier try). */
export async function markMinuteFlushed(tx: Queryable, minute: Date): Promise<boolean> {
  const { rowCount } = await tx.query('INSERT INTO topic_stats_flushed (start_time) VALUES ($1) ON CONFLICT DO NOTHING', [minute]);
  return rowCount === 1;
}

/** Inserts a minute's rows; a row already there is kept (never added to twice). */
export async function insertMinuteRows(tx: Queryable, minute: Date, rows: readonly StatsRow[]): Promise<void> {
  await writeRows(tx, TABLE.minute, minute, rows, 'ON CONFLICT DO NOTHING');
}

/**
 * Adds a minute's rows into the hour or day that starts at `start`: counters added, latency
 * histograms added bucket by bucket. Each minute is added once — in the transaction that marks it
 * flushed — so a window stays the sum of its minutes without a flush reading back the window's
 * other minutes (or the hours of its day): a flush costs its own rows, however long the history.
 * The rows must name distinct topics (`statsRowsOf`): one statement cannot update a row twice.
 */
export async function addToWindow(tx: Queryable, into: 'hour' | 'day', start: Date, rows: readonly StatsRow[]): Promise<void> {
  const added = [...COLUMNS.map((column) => `${column} = stats.${column} + excluded.${column}`), `latency = ${ADD_LATENCY}`];
  await writeRows(tx, `${TABLE[into]} AS stats`, start, rows, `ON CONFLICT (app, env, topic, tenant, start_time) DO UPDATE SET ${added.join(', ')}`);
}

/**
 * Two histograms added bucket by bucket, the shorter padded with zeros (as `aggregate` sums
 * them); an empty one (no live delivery) adds nothing.
 */
const ADD_LATENCY = `CASE
  WHEN cardinality(excluded.latency) = 0 THEN stats.latency
  WHEN cardinality(stats.latency) = 0 THEN excluded.latency
  ELSE ARRAY(SELECT coalesce(mine, 0) + coalesce(theirs, 0)
               FROM unnest(stats.latency, excluded.latency) WITH ORDINALITY AS bucket(mine, theirs, position)
              ORDER BY position)
END`;

/** Rows of one window start into `table`, `INSERT_CHUNK` a statement. */
async function writeRows(tx: Queryable, table: string, start: Date, rows: readonly StatsRow[], onConflict: string): Promise<void> {
  const counterParams = COLUMNS.map((_, index) => `$${index + 6}::float8[]`).join(', ');
  for (let offset = 0; offset < rows.length; offset += INSERT_CHUNK) {
    const chunk = rows.slice(offset, offset + INSERT_CHUNK);
    await tx.query(
      `INSERT INTO ${table} (app, env, tenant, topic, start_time, ${COLUMNS.join(', ')}, latency)
       SELECT app, env, tenant, topic, $1, ${COLUMNS.join(', ')}, latency::bigint[]
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], ${counterParams}, $${COLUMNS.length + 6}::text[])
           AS t(app, env, tenant, topic, ${COLUMNS.join(', ')}, latency)
       ${onConflict}`,
      [
        start,
        chunk.map((row) => row.app),
        chunk.map((row) => row.env),
        chunk.map((row) => row.tenant),
        chunk.map((row) => row.topic),
        ...COUNTERS.map((counter) => chunk.map((row) => row.counts[counter])),
        chunk.map((row) => `{${row.counts.latency?.join(',') ?? ''}}`),
      ],
    );
  }
}

/** Deletes minute rows (and flush marks) that start before `before`. */
export async function pruneMinutes(db: Queryable, before: Date): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM topic_stats_minute WHERE start_time < $1', [before]);
  await db.query('DELETE FROM topic_stats_flushed WHERE start_time < $1', [before]);
  return rowCount;
}

/** Hour or day rows deleted per statement (and so per flush) at most. */
const PRUNE_WINDOWS_BATCH = 10_000;

/**
 * Deletes hour or day rows that start before `before`, at most `limit` (by their age index,
 * migrations/0037); returns how many. What is left waits for the next flush.
 */
export async function pruneWindows(db: Queryable, granularity: 'hour' | 'day', before: Date, limit = PRUNE_WINDOWS_BATCH): Promise<number> {
  const table = TABLE[granularity];
  const { rowCount } = await db.query(
    `DELETE FROM ${table} WHERE (app, env, topic, tenant, start_time) IN (
       SELECT app, env, topic, tenant, start_time FROM ${table} WHERE start_time < $1 LIMIT $2)`,
    [before, limit],
  );
  return rowCount;
}

/** The flushed minutes from `from` on, in ms since the epoch. */
export async function flushedMinutes(db: Queryable, from: Date): Promise<Set<number>> {
  const { rows } = await db.query<{ start_time: Date }>('SELECT start_time FROM topic_stats_flushed WHERE start_time >= $1', [from]);
  return new Set(rows.map((row) => row.start_time.getTime()));
}

export interface TopicWindowQuery {
  readonly granularity: Granularity;
  readonly app: string;
  readonly env: string;
  /** Only this tenant ('' for application-wide events); every tenant when undefined. */
  readonly tenant: string | undefined;
  readonly topic: string;
  readonly from: Date;
  readonly to: Date;
}

/** A topic's windows starting in [from, to), tenants summed unless one is asked for. */
export async function topicWindows(db: Queryable, query: TopicWindowQuery): Promise<{ start: Date; counts: TopicCounts }[]> {
  const { rows } = await db.query<AggregateRow & { start_time: Date }>(
    `${aggregate(
      `SELECT * FROM ${TABLE[query.granularity]}
        WHERE app = $1 AND env = $2 AND topic = $3 AND ($4::text IS NULL OR tenant = $4) AND start_time >= $5 AND start_time < $6`,
      ['start_time'],
    )} ORDER BY start_time`,
    [query.app, query.env, query.topic, query.tenant ?? null, query.from, query.to],
  );
  return rows.map((row) => ({ start: row.start_time, counts: countsOf(row) }));
}

/**
 * A minute's rows from its topic keys, text that is not a topic key left out. An environment's
 * overflow row (`overflowKeyOf`) is a topic key like the others: its environment's, no tenant,
 * topic `~other`; `OTHER_TOPIC_KEY` (no environment) is the row of app and env ''. Keys naming one
 * row — no tenant and the tenant '', a service's documents (`statsTopicOf`) — are added into one:
 * a window's row is written once per minute.
 */
export function statsRowsOf(topics: ReadonlyMap<string, TopicCounts>): StatsRow[] {
  const rows = new Map<string, StatsRow>();
  for (const [topicKey, counts] of topics) {
    const row = statsRowOf(topicKey, counts);
    if (!row) continue;
    const key = JSON.stringify([row.app, row.env, row.tenant, row.topic]);
    const known = rows.get(key);
    if (!known) {
      rows.set(key, row);
      continue;
    }
    // A copy: `topics` is what the flusher later takes out of the store, unchanged.
    const sum = emptyCounts();
    mergeCounts(sum, known.counts);
    mergeCounts(sum, counts);
    rows.set(key, { ...known, counts: sum });
  }
  return [...rows.values()];
}

function statsRowOf(topicKey: string, counts: TopicCounts): StatsRow | undefined {
  if (topicKey === OTHER_TOPIC_KEY) return { app: '', env: '', tenant: '', topic: OTHER_TOPIC_KEY, counts };
  const parsed = parseStreamKey(topicKey);
  if (!parsed) return undefined;
  return { app: parsed.scope.app, env: parsed.scope.env, tenant: parsed.scope.tenant ?? '', topic: statsTopicOf(parsed.topic), counts };
}

/** A sync document's topic, `sync.{service}.doc.{id}` (service and id as `resolvers/documents.ts` allows them). */
const DOCUMENT_TOPIC = /^sync\.([a-z][a-z0-9_-]{0,62})\.doc\.[A-Za-z0-9_.:-]{1,128}$/;

/**
 * The topic a stream's counts are stored and ranked under: its own, but for a sync document's —
 * every document is a stream of its own, and a row per document in every minute, hour and day is a
 * row per document ever changed, kept for years — which is counted under its service's
 * `sync.{service}.doc.*` (no topic is named so: `*` is not a name's character, `names.ts`). One
 * function for the flush and for the hot topics' minutes not flushed yet: the hours the hot topics
 * read beside the minutes must name topics as the minutes do.
 */
export function statsTopicOf(topic: string): string {
  const document = DOCUMENT_TOPIC.exec(topic);
  return document ? `sync.${document[1]}.doc.*` : topic;
}
