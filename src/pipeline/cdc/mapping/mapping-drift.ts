/**
 * Schema drift: the table changed after its mapping was saved — a column the mapping reads was
 * dropped or renamed. Postgres describes a table's columns in the stream (the pgoutput relation,
 * sent again after an `ALTER TABLE`: `RowChange.relationColumns`); a column the mapping reads that
 * is not among them would read as unavailable, and a `when` on it as unknown — the mapping would
 * emit nothing for every change, silently. Instead such a change is unroutable, `column-missing`
 * (`mapping-evaluate.ts`), logged, counted and alerted as the other reasons (`binding-events.ts`):
 * - a column that decides whether and where the change goes (`tenantColumn`, `key` — else the
 *   table's primary key —, `softDeleteColumn`, `when`): nothing of the change is published;
 * - a column only the mapping topic's event reads (topic template, payload): that event alone is
 *   lost, as with any topic the row cannot build; the model stream's events need only the tenant
 *   and the key.
 * An unchanged TOASTed column and a delete's key-only old row are not drift: the relation lists
 * every column whatever the images hold. Neither is a generated column, which pgoutput does not
 * send (`TableShape.generatedColumns`).
 *
 * Worked out once per relation description and mapping (both objects stay the same until the
 * table is described again or the mapping is saved), not per row.
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

/** What of a mapping the change's relation cannot serve; each error message names the columns, never values. */
export interface ColumnDrift {
  /** Set when a column deciding whether and where the change goes is missing. */
  readonly routing: (() => UnroutableRowError) | undefined;
  /** Set when a column only the mapping topic's event reads is missing. */
  readonly topic: (() => UnroutableRowError) | undefined;
  /** The soft-delete column is missing: whether a change is a soft delete or restore cannot be told. */
  readonly softDeleteMissing: boolean;
}

const NO_DRIFT: ColumnDrift = { routing: undefined, topic: undefined, softDeleteMissing: false };

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

function driftOf(mapping: DomainMapping, relationColumns: readonly string[], context: DriftContext): ColumnDrift {
  const present = new Set([...relationColumns, ...(context.generatedColumns ?? [])]);
  const routing = new Map<string, string[]>();
  const topic = new Map<string, string[]>();
  const note = (uses: Map<string, string[]>, column: string, path: string) => {
    if (!present.has(column)) uses.set(column, [...(uses.get(column) ?? []), path]);
  };
  if (mapping.tenantColumn !== undefined) note(routing, mapping.tenantColumn, 'tenantColumn');
  if (mapping.softDeleteColumn !== undefined) note(routing, mapping.softDeleteColumn, 'softDeleteColumn');
  if (mapping.key !== undefined) mapping.key.forEach((column, i) => note(routing, column, `key[${i}]`));
  else for (const column of context.primaryKey ?? []) note(routing, column, 'the primary key');
  for (const use of compiled(mapping).uses) note(use.in === 'when' ? routing : topic, use.column, use.path);
  if (routing.size === 0 && topic.size === 0) return NO_DRIFT;
  const ref = mappingTable(mapping);
  const table = `${ref.schema}.${ref.name}`;
  const error = (uses: Map<string, string[]>, effect: string) => {
    if (uses.size === 0) return undefined;
    const listed = [...uses].map(([column, paths]) => `"${column}" (used at ${paths.join(', ')})`).join(', ');
    const message =
      `${uses.size === 1 ? 'column' : 'columns'} ${listed} of ${table} ${uses.size === 1 ? 'is' : 'are'} not in its changes as Postgres sends them ` +
      `(dropped or renamed since the mapping was saved, or left out of the publication's column list): ${effect}. ` +
      'Fix: save the mapping again with the columns the table has now';
    return () => new UnroutableRowError('column-missing', mapping.name, message);
  };
  return {
    softDeleteMissing: mapping.softDeleteColumn !== undefined && !present.has(mapping.softDeleteColumn),
    routing: error(routing, 'nothing of the change is published'),
    topic: error(topic, "the mapping topic's event is not published"),
  };
}
