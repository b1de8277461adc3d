import type { Queryable } from './database.ts';

/**
 * Rows a reader set aside, counted per subject and minute for the alert rules (migration 0031):
 * `outbox_dead_counts` (per outbox, by reason) and `cdc_unroutable_counts` (per source, by
 * environment, mapping and reason). Readers keep their counts in memory until one of these writes
 * succeeds, so a failed write loses none.
 */

/**
 * How long counts are kept, in hours: longer than the longest alert window (`ALERTS_WINDOW_SECONDS`,
 * a day), so a window never misses rows.
 */
const MINUTE_COUNT_RETENTION_HOURS = 25;

/** A table of minute counts: its subject column, then the label columns of its primary key (all text). */
export type MinuteCountTable =
  | { readonly name: 'outbox_dead_counts'; readonly subject: 'outbox_id'; readonly labels: readonly ['reason'] }
  | { readonly name: 'cdc_unroutable_counts'; readonly subject: 'source'; readonly labels: readonly ['app', 'env', 'mapping', 'reason'] };

export const OUTBOX_DEAD_COUNTS: MinuteCountTable = { name: 'outbox_dead_counts', subject: 'outbox_id', labels: ['reason'] };
export const CDC_UNROUTABLE_COUNTS: MinuteCountTable = { name: 'cdc_unroutable_counts', subject: 'source', labels: ['app', 'env', 'mapping', 'reason'] };

/** Rows counted under one set of label values (in the table's `labels` order). */
export interface MinuteCount {
  readonly labels: readonly string[];
  readonly rows: number;
}

/**
 * Adds `counts` to the subject's counts of this minute, one statement for all (a burst is one
 * upsert), deleting the subject's counts older than MINUTE_COUNT_RETENTION_HOURS on the way: a
 * subject no longer written keeps its last day's rows until it writes again (a handful).
 */
export async function addMinuteCounts(db: Queryable, table: MinuteCountTable, subject: string, counts: readonly MinuteCount[]): Promise<void> {
  if (counts.length === 0) return;
  // Identifiers come from the two constant tables above, never from input.
  const labels = table.labels.join(', ');
  const arrays = table.labels.map((_, index) => `$${index + 2}::text[]`).join(', ');
  const rowCounts = `$${table.labels.length + 2}::bigint[]`;
  await db.query(
    `WITH pruned AS (DELETE FROM ${table.name} WHERE ${table.subject} = $1 AND minute < now() - interval '${MINUTE_COUNT_RETENTION_HOURS} hours')
     INSERT INTO ${table.name} (${table.subject}, minute, ${labels}, row_count)
     SELECT $1, date_trunc('minute', now()), ${labels}, row_count FROM unnest(${arrays}, ${rowCounts}) AS counted (${labels}, row_count)
     ON CONFLICT (${table.subject}, minute, ${labels}) DO UPDATE SET row_count = ${table.name}.row_count + excluded.row_count`,
    [subject, ...table.labels.map((_, index) => counts.map((count) => count.labels[index] ?? '')), counts.map((count) => count.rows)],
  );
}
