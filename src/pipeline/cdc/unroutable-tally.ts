/**
 * Rows a mapping matched but could not route (`binding-events.ts`), counted in memory on the
 * reader's hot path and added to the platform database with the source's next status save
 * (`cdc-store.ts`, migration 0031).
 */
/**
 * A row change not routed: the environment whose mapping matched it, that mapping and why
 * (`UnroutableReason`). The environment, not the source, is whose alert it is: environments
 * sharing a source database have mappings of their own.
 */
export interface UnroutableNote {
  readonly app: string;
  readonly env: string;
  readonly mapping: string;
  readonly reason: string;
}

/** Counts by label values in `CDC_UNROUTABLE_COUNTS` order (app, env, mapping, reason). */
type UnroutableCount = { readonly labels: readonly string[]; rows: number };
export type UnroutableCounts = Map<string, UnroutableCount>;

/** Unroutable rows per source, noted but not saved yet; per environment, mapping and reason. */
export function createUnroutableTally() {
  const bySource = new Map<string, UnroutableCounts>();
  const add = (source: string, labels: readonly string[], rows: number) => {
    let counts = bySource.get(source);
    if (!counts) bySource.set(source, (counts = new Map<string, UnroutableCount>()));
    const key = JSON.stringify(labels);
    const entry = counts.get(key);
    if (entry) entry.rows += rows;
    else counts.set(key, { labels, rows });
  };
  return {
    note: (source: string, row: UnroutableNote) => add(source, [row.app, row.env, row.mapping, row.reason], 1),
    take(source: string): UnroutableCounts {
      const counts = bySource.get(source) ?? new Map<string, UnroutableCount>();
      bySource.delete(source);
      return counts;
    },
    /** Puts back counts a failed save took: noted meanwhile or not, none is lost. */
    restore(source: string, counts: UnroutableCounts) {
      for (const { labels, rows } of counts.values()) add(source, labels, rows);
    },
  };
}
