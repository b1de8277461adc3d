/**
 * Schema drift: the change's relation lacks a column the mapping reads to route or judge it — the
 * column was dropped or renamed since the mapping was saved, the change was committed before the
 * column was added (a lagging reader, a replay: its relation is described as it was then), or the
 * publication's column list leaves it out. Postgres describes a table's columns in the stream (the
 * pgoutput relation, sent again after an `ALTER TABLE`: `RowChange.relationColumns`); such a
 * column would read as unavailable, and a `when` on it as unknown — the mapping would emit nothing
 * for every change, silently. Instead a change that reads it in its `tenantColumn`, `key` (else the
 * table's primary key), `softDeleteColumn` or `when` is unroutable, `column-missing`
 * (`mapping-evaluate.ts`): nothing of it is published; it is counted and alerted as the other
 * reasons, and logged at warn at most once a minute per relation description and mapping
 * ({@link driftWarning}, `binding-events.ts`) — every change of the table is one until the mapping
 * is saved again.
 * A column only the topic template or the payload reads is no drift: the payload leaves it out (as
 * any value Postgres did not send), a topic placeholder without a value costs the topic's event
 * (`topic-template.ts`) — a change committed before the column was added must not lose its event.
 * An unchanged TOASTed column and a delete's key-only old row are not drift either: the relation
 * lists every column whatever the images hold. Nor is a generated column, which pgoutput does not
 * send (`TableShape.generatedColumns`).
 *
 * Worked out once per relation description and mapping (both objects stay the same until the
 * table is described again or the mapping is saved), not per row; its error is built once too.
 */
import { compiled } from './mapping-compile.ts';
import { type DomainMapping, mappingTable } from './mapping.ts';
import { UnroutableRowError } from './mapping-identity.ts';

/** The table as the catalog described it when the mappings were loaded (`TableShape`'s parts). */
export interface DriftContext {
  /** The entity key of a mapping without `key`. */
  readonly primaryKey?: readonly string[] | undefined;
  readonly generatedColumns?: readonly string[] | undefined;
}

/** What of a mapping the change's relation cannot serve. */
export interface ColumnDrift {
  /**
   * Set when a column deciding whether and where the change goes is missing: the error of every
   * such change of the relation description (its message names the columns, never values).
   */
  readonly routing: UnroutableRowError | undefined;
  /** The soft-delete column is missing: whether a change is a soft delete or restore cannot be told. */
  readonly softDeleteMissing: boolean;
}

const NO_DRIFT: ColumnDrift = { routing: undefined, softDeleteMissing: false };

/** A drift error is logged at warn at most this often, in ms (`driftWarning`). */
export const DRIFT_WARN_INTERVAL_MS = 60_000;

/** By drift error (one per relation description and mapping): when it was last logged at warn, and the changes not logged at warn since. */
const warned = new WeakMap<UnroutableRowError, { at: number; unlogged: number }>();

/**
 * Whether a change unroutable for `error` is to be logged at warn at `now` (ms): for a drift error,
 * once per {@link DRIFT_WARN_INTERVAL_MS} — then the number of its changes not logged at warn
 * since, else undefined (the change is counted, and logged at debug); for any other error, always (0).
 */
export function driftWarning(error: UnroutableRowError, now: number): number | undefined {
  const state = warned.get(error);
  if (state === undefined) return 0;
  if (now - state.at < DRIFT_WARN_INTERVAL_MS) {
    state.unlogged += 1;
    return undefined;
  }
  const { unlogged } = state;
  state.at = now;
  state.unlogged = 0;
  return unlogged;
}

interface Entry extends DriftContext {
  readonly drift: ColumnDrift;
}

const byRelation = new WeakMap<readonly string[], WeakMap<DomainMapping, Entry>>();

/**
 * The mapping's columns the change's relation lacks; none when the change does not say what its
 * relation holds (`relationColumns` undefined: a change built by hand).
 */
export function columnDrift(mapping: DomainMapping, relationColumns: readonly string[] | undefined, context: DriftContext): ColumnDrift {
  if (relationColumns === undefined) return NO_DRIFT;
  let byMapping = byRelation.get(relationColumns);
  if (byMapping === undefined) byRelation.set(relationColumns, (byMapping = new WeakMap<DomainMapping, Entry>()));
  const hit = byMapping.get(mapping);
  if (hit !== undefined && hit.primaryKey === context.primaryKey && hit.generatedColumns === context.generatedColumns) return hit.drift;
  const drift = driftOf(mapping, relationColumns, context);
  byMapping.set(mapping, { ...context, drift });
  return drift;
}

/**
 * The columns of the mapping's `part` that `columns` lacks, each with where the mapping uses it:
 * `routing`, those deciding whether and where a change goes (tenant, key — else the primary key —,
 * soft delete, `when`); `topic` and `payload`, those the topic template or the payload read.
 * Generated columns count as present (pgoutput never sends them).
 */
export function missingColumns(mapping: DomainMapping, columns: readonly string[], context: DriftContext, part: 'routing' | 'topic' | 'payload' = 'routing'): Map<string, string[]> {
  const present = new Set([...columns, ...(context.generatedColumns ?? [])]);
  const uses = new Map<string, string[]>();
  const note = (column: string, path: string) => {
    if (!present.has(column)) uses.set(column, [...(uses.get(column) ?? []), path]);
  };
  if (part === 'routing') {
    if (mapping.tenantColumn !== undefined) note(mapping.tenantColumn, 'tenantColumn');
    if (mapping.softDeleteColumn !== undefined) note(mapping.softDeleteColumn, 'softDeleteColumn');
    if (mapping.key !== undefined) mapping.key.forEach((column, i) => note(column, `key[${i}]`));
    else for (const column of context.primaryKey ?? []) note(column, 'the primary key');
  }
  // The topic template and the payload read a missing column as any value not sent: no drift.
  for (const use of compiled(mapping).uses) if (use.in === (part === 'routing' ? 'when' : part)) note(use.column, use.path);
  return uses;
}

/** `uses` (`missingColumns`) as a message lists them. */
export const listColumns = (uses: ReadonlyMap<string, readonly string[]>): string => [...uses].map(([column, paths]) => `"${column}" (used at ${paths.join(', ')})`).join(', ');

function driftOf(mapping: DomainMapping, relationColumns: readonly string[], context: DriftContext): ColumnDrift {
  const uses = missingColumns(mapping, relationColumns, context);
  if (uses.size === 0) return NO_DRIFT;
  const ref = mappingTable(mapping);
  const listed = listColumns(uses);
  const present = new Set([...relationColumns, ...(context.generatedColumns ?? [])]);
  const message =
    `${uses.size === 1 ? 'column' : 'columns'} ${listed} of ${ref.schema}.${ref.name} ${uses.size === 1 ? 'is' : 'are'} not in its changes as Postgres sends them ` +
    '(dropped or renamed since the mapping was saved, or the change was committed before the column was added, ' +
    "or the column is left out of the publication's column list): nothing of the change is published. " +
    "Fix: save the mapping again with the columns the table has now, or add the column to the publication's column list " +
    '(a change committed before the column was added stays unroutable)';
  const routing = new UnroutableRowError('column-missing', mapping.name, message);
  warned.set(routing, { at: -Infinity, unlogged: 0 });
  return { routing, softDeleteMissing: mapping.softDeleteColumn !== undefined && !present.has(mapping.softDeleteColumn) };
}
