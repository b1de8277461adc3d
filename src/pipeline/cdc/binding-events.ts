/**
 * The events one row change becomes under the mappings of one environment reading its database
 * (`cdc-source.ts`), and what becomes of a change a mapping matched but cannot route in full:
 * - no tenant or key that can be routed safely, or a column its tenant, key, soft delete or `when`
 *   reads missing from the change's relation — dropped or renamed since the mapping was saved,
 *   added after the change was committed, left out of the publication's column list
 *   (`mapping/mapping-drift.ts`): nothing of it is published, for any stream;
 * - a mapping topic this row cannot build (a NULL, empty or unsent placeholder value, a topic past
 *   the name rules or one of Tributary's own): only the topic's event is lost. The model stream's
 *   events need the tenant and the key alone, and were they dropped, `changes` would miss a row
 *   that `records` lists — a client that ignores updates of ids it does not hold would never
 *   show it.
 * Either way the change is counted in `tributary_cdc_unroutable_rows_total` and logged at warn with
 * the mapping and the reason — a missing column (`column-missing`) at most once a minute per
 * relation description and mapping, saying how many changes were not logged at warn since (those at
 * debug): until the mapping is saved again it is every change of the table.
 */
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { RawEventInput, WalTransaction } from '../events/envelope.ts';
import { scopeKey } from '../scope.ts';
import type { TableShape } from './mapping/mapping-check.ts';
import { driftWarning } from './mapping/mapping-drift.ts';
import { evaluateChange, UnroutableRowError } from './mapping/mapping-evaluate.ts';
import { mappedChangeEvents } from './mapping/mapped-events.ts';
import { mappingTable, type DomainMapping } from './mapping/mapping.ts';
import type { RowChange } from './row-change.ts';

/** What of an environment's binding to the source the events are made from (a `CdcBinding` is one). */
export interface MappedBinding {
  readonly scope: { readonly app: string; readonly env: string };
  readonly mappings: readonly DomainMapping[];
  /** Catalog entries of the mapped tables, by `schema.table`. */
  readonly tables: ReadonlyMap<string, Pick<TableShape, 'primaryKey' | 'generatedColumns'>>;
}

/** The change and what its events share: the source, its transaction and commit time. */
export interface BindingChange {
  /** The source's id (`sourceIdOf`). */
  readonly source: string;
  readonly change: RowChange;
  readonly transaction: WalTransaction;
  /** The commit time, ISO 8601. */
  readonly lastUpdatedAt: string;
}

export interface BindingEventsOptions {
  /** The source's logger. */
  readonly logger: Logger;
  /** Counts changes that matched a mapping but could not be routed in full. @default no metrics */
  readonly metrics?: Pick<Metrics, 'cdcUnroutable'>;
  /**
   * Called for each such change, after it is logged and counted (e.g. to keep a durable count),
   * with the environment whose mapping matched it: the failure is that environment's, not that of
   * every environment reading the source. @default none
   */
  readonly onUnroutable?: (error: UnroutableRowError, scope: MappedBinding['scope']) => void;
  /** The clock pacing the warn lines of a missing column, in ms. @default Date.now */
  readonly now?: () => number;
}

/** The events of a change under each of the binding's mappings, in mapping order. */
export function bindingEvents(binding: MappedBinding, context: BindingChange, options: BindingEventsOptions): RawEventInput[] {
  const { change } = context;
  const table = `${change.table.schema}.${change.table.name}`;
  const shape = binding.tables.get(table);
  const evaluation = { primaryKey: shape?.primaryKey ?? change.keyColumns, generatedColumns: shape?.generatedColumns };
  const events: RawEventInput[] = [];
  for (const mapping of binding.mappings) {
    let evaluated;
    try {
      evaluated = evaluateChange(mapping, change, evaluation);
    } catch (error) {
      if (!(error instanceof UnroutableRowError)) throw error;
      unroutable(options, binding.scope, error, 'row change not routed');
      continue;
    }
    if (!evaluated) continue;
    if (evaluated.topic === undefined) unroutable(options, binding.scope, evaluated.topicProblem, 'row change not routed to its mapping topic (its model stream has it)');
    events.push(...mappedChangeEvents({ ...context, scope: binding.scope, mapping }, evaluated));
  }
  return events;
}

function unroutable(options: BindingEventsOptions, scope: MappedBinding['scope'], error: UnroutableRowError, message: string): void {
  const fields = { app: scope.app, env: scope.env, mapping: error.mapping, reason: error.reason };
  const unlogged = driftWarning(error, (options.now ?? Date.now)());
  // The error's message names columns, never row values (`mapping-identity.ts`): safe to log.
  if (unlogged === undefined) options.logger.debug(fields, message);
  else options.logger.warn({ ...fields, ...(unlogged > 0 && { unlogged }), err: error }, message);
  options.metrics?.cdcUnroutable.inc();
  options.onUnroutable?.(error, scope);
}

/** `schema.table` of every table some binding maps. */
export function mappedTables(bindings: readonly Pick<MappedBinding, 'mappings'>[]): ReadonlySet<string> {
  const tables = new Set<string>();
  for (const binding of bindings) {
    for (const mapping of binding.mappings) {
      const table = mappingTable(mapping);
      tables.add(`${table.schema}.${table.name}`);
    }
  }
  return tables;
}

/** The router's per-entity keys of a batch (`event-router.ts`). */
export function entityKeysOf(inputs: readonly RawEventInput[]): string[] {
  const keys = new Set<string>();
  for (const input of inputs) if (input.entity !== undefined) keys.add(`${scopeKey(input.scope)}|${input.entity}`);
  return [...keys];
}
