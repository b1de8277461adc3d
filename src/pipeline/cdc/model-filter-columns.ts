/**
 * A model filter's columns against the model's table (`changes` and `records` after their
 * permission check): a column the rows do not have — a misspelling, `{ "stauts": "eq.paid" }` —
 * would match nothing, silently and for ever, which looks exactly like a missing permission. It is
 * refused with BAD_USER_INPUT naming the column and the closest one the table has.
 *
 * Where the columns come from: the source database's catalog (`describeTable`), the one source
 * every instance can ask (only the reader's leader sees pgoutput RELATION messages). Kept per
 * table, per source (keyed by its `SourceConnections`, so a new source URL starts afresh):
 *
 * - A filter whose columns the kept list has is accepted without a query, for {@link COLUMNS_TTL_MS}.
 * - A column the list lacks is never refused from memory: the catalog is read again first, by a
 *   read that started after the caller asked (a column added a moment ago is filterable, no
 *   restart). Callers arriving while a read runs share the one queued behind it.
 * - A column dropped from the table stays accepted until its list is {@link COLUMNS_TTL_MS} old.
 *
 * When the catalog cannot be read within {@link CATALOG_WAIT_MS} (the source is away or slow), or
 * the table does not exist, the filter is not checked: the behaviour before this check. `changes`
 * is served from the event log and needs no source to resume; refusing it would turn every source
 * outage into a subscription outage (and UNAVAILABLE retries would pile on a struggling source).
 * `records` reads the source next and answers UNAVAILABLE or MISCONFIGURED on its own.
 */
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { within } from '../coordination/within.ts';
import type { ModelSource } from './cdc-service.ts';
import { mappingTable, type DomainMapping } from './mapping/mapping.ts';
import { modelTopic } from './mapping/mapping-topics.ts';
import { describeTable } from './mapping/table-catalog.ts';
import type { TableRef } from './row-change.ts';
import type { SourceConnections } from './wal/source-connections.ts';
import type { ModelFilter } from '../filters/model-filter.ts';

/** A kept column list is trusted this long, in ms (then read again on its next use). */
export const COLUMNS_TTL_MS = 60_000;
/** Longest a subscription waits for the catalog before it is accepted unchecked, in ms. */
export const CATALOG_WAIT_MS = 2_000;
/**
 * A catalog read still unanswered after this long fails and its connection is dropped (a half-open
 * one that TCP has not given up yet): the next caller starts another — every caller had queued
 * behind it, unchecked, until a restart, and the source pool's two connections are shared.
 */
export const CATALOG_READ_TIMEOUT_MS = 30_000;
/** The closest column is suggested within this many edits (fewer for short names). */
const MAX_SUGGESTION_DISTANCE = 3;

export interface FilterColumnsQuery {
  readonly filter: ModelFilter;
  /** The model's name, for the message. */
  readonly model: string;
  /** The model's source: its first mapping (the table `records` reads) and the source database; undefined when there is none. */
  readonly source: () => Promise<Pick<ModelSource, 'mapping' | 'connections'> | undefined>;
  /**
   * The environment's mappings: those of the same model stream read other tables whose rows reach
   * `changes` too. Asked only when a column is missing from the first mapping's table.
   */
  readonly mappings: () => Promise<readonly DomainMapping[]>;
  readonly logger: Logger;
}

export interface FilterColumnsOptions {
  /** @default Date.now */
  readonly now?: () => number;
  /** @default COLUMNS_TTL_MS */
  readonly ttlMs?: number;
  /** @default CATALOG_WAIT_MS */
  readonly waitMs?: number;
  /** @default CATALOG_READ_TIMEOUT_MS */
  readonly readTimeoutMs?: number;
}

interface TableColumns {
  /** The last list read, and when it was read (ms since the epoch). */
  known: { readonly columns: ReadonlySet<string>; readonly readAt: number } | undefined;
  /** The read in flight, and when it started. */
  running: { readonly promise: Promise<ReadonlySet<string> | undefined>; readonly startedAt: number } | undefined;
  /** The read queued behind `running`, shared by callers who arrived after it started. */
  queued: Promise<ReadonlySet<string> | undefined> | undefined;
}

/** By source, then by `schema.table`. A WeakMap: a source's lists go with its connections. */
const kept = new WeakMap<SourceConnections, Map<string, TableColumns>>();

/**
 * Throws BAD_USER_INPUT (`field: "filter"`, `column`, and `closest` when one is near) for the first
 * filter column none of the model's tables has; resolves when every column exists, or when that
 * cannot be told now (see the file's comment).
 */
export async function assertFilterColumns(query: FilterColumnsQuery, options: FilterColumnsOptions = {}): Promise<void> {
  if (query.filter.clauses.length === 0) return;
  const now = options.now ?? Date.now;
  const askedAt = now();
  const wanted = [...new Set(query.filter.clauses.map((clause) => clause.column))];
  const settings = { now, ttlMs: options.ttlMs ?? COLUMNS_TTL_MS, readTimeoutMs: options.readTimeoutMs ?? CATALOG_READ_TIMEOUT_MS };
  const lookup = async (): Promise<ReadonlySet<string> | undefined> => {
    const source = await query.source();
    if (source === undefined) return undefined;
    const { connections, mapping } = source;
    const first = await columnsOf(connections, mappingTable(mapping), wanted, askedAt, settings);
    if (first === undefined || wanted.every((column) => first.has(column))) return first;
    const all = new Set(first);
    const topic = modelTopic(mapping);
    for (const other of await query.mappings()) {
      if (other.table === mapping.table || modelTopic(other) !== topic) continue;
      for (const column of (await columnsOf(connections, mappingTable(other), wanted, askedAt, settings)) ?? []) all.add(column);
    }
    return all;
  };
  const pending = lookup();
  let columns: ReadonlySet<string> | undefined;
  try {
    columns = await within(pending, options.waitMs ?? CATALOG_WAIT_MS, 'the catalog did not answer in time');
  } catch (error) {
    // A lookup past its wait goes on (its read keeps the list for later callers); whatever it ends with is not this caller's.
    pending.catch(() => undefined);
    query.logger.debug({ err: error, model: query.model }, "a model filter's columns were not checked: the source's catalog cannot be read now");
    return;
  }
  if (columns === undefined) return;
  const missing = wanted.find((column) => !columns.has(column));
  if (missing === undefined) return;
  const closest = closestColumn(missing, columns);
  const hint = closest === undefined ? '' : ` (did you mean ${JSON.stringify(closest)}?)`;
  throw new TributaryError(ErrorCode.BAD_USER_INPUT, `Invalid filter on ${JSON.stringify(missing)}: model ${JSON.stringify(query.model)} has no such column${hint}`, {
    details: { field: 'filter', column: missing, ...(closest === undefined ? {} : { closest }) },
  });
}

/**
 * The table's columns: the kept list when it is fresh and has every wanted column, else a read
 * that started at or after `askedAt`. Undefined when there is no such table. Rejects when the
 * catalog cannot be read.
 */
interface ReadSettings {
  readonly now: () => number;
  readonly ttlMs: number;
  readonly readTimeoutMs: number;
}

function columnsOf(connections: SourceConnections, table: TableRef, wanted: readonly string[], askedAt: number, settings: ReadSettings): Promise<ReadonlySet<string> | undefined> {
  let tables = kept.get(connections);
  if (tables === undefined) kept.set(connections, (tables = new Map<string, TableColumns>()));
  const key = `${table.schema}.${table.name}`;
  let entry = tables.get(key);
  if (entry === undefined) tables.set(key, (entry = { known: undefined, running: undefined, queued: undefined }));
  const { known } = entry;
  if (known !== undefined && settings.now() - known.readAt < settings.ttlMs && wanted.every((column) => known.columns.has(column))) return Promise.resolve(known.columns);
  return freshRead(entry, connections, table, askedAt, settings);
}

function freshRead(entry: TableColumns, connections: SourceConnections, table: TableRef, askedAt: number, { now, readTimeoutMs }: ReadSettings): Promise<ReadonlySet<string> | undefined> {
  const start = (): Promise<ReadonlySet<string> | undefined> => {
    const startedAt = now();
    const promise = connections
      // Past its time the read fails, and withClient drops the connection it held.
      .withClient((client) => within(describeTable(client, table), readTimeoutMs, 'the catalog read did not answer'))
      .then((shape) => {
        const columns = shape === undefined ? undefined : new Set(shape.columns);
        // A missing table keeps no list: it may be created, and is not asked for often (`records` answers MISCONFIGURED).
        if (entry.known === undefined || entry.known.readAt <= startedAt) entry.known = columns === undefined ? undefined : { columns, readAt: startedAt };
        return columns;
      })
      .finally(() => {
        if (entry.running?.promise === promise) entry.running = undefined;
      });
    entry.running = { promise, startedAt };
    return promise;
  };
  const { running } = entry;
  if (running === undefined) return start();
  // A read that started before the caller asked may predate the column it names (an ALTER TABLE just committed).
  if (running.startedAt >= askedAt) return running.promise;
  if (entry.queued === undefined) {
    const queued = running.promise
      .catch(() => undefined)
      .then(() => {
        if (entry.queued === queued) entry.queued = undefined;
        return start();
      });
    entry.queued = queued;
  }
  return entry.queued;
}

/** The column nearest to `name` (same name in another case first, then fewest edits), if near enough. */
export function closestColumn(name: string, columns: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.min(MAX_SUGGESTION_DISTANCE, Math.floor(name.length / 3)) + 1;
  for (const column of columns) {
    if (column.toLowerCase() === lower) return column;
    const distance = editDistance(lower, column.toLowerCase(), bestDistance);
    if (distance < bestDistance) {
      best = column;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance (a swap of two neighbours is one edit), cut off at `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_unused, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, (before[j - 2] as number) + 1);
      current.push(value);
    }
    before = previous;
    previous = current;
  }
  return Math.min(limit, previous[b.length] as number);
}
