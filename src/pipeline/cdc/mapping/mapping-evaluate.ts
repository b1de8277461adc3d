/**
 * Evaluating a mapping against one row change: the domain event it produces, if any.
 *
 * What Postgres does not send. Without `REPLICA IDENTITY FULL`, an update carries no old row
 * (only the old key when the key changed) and a delete carries only the key; an update omits
 * TOASTed columns whose value did not change (`unchangedToastColumns`). Such a value is
 * *unavailable*, never null:
 * - `$row.col` of an unchanged TOASTed column is taken from the old row when Postgres sent it;
 * - a comparison that reads an unavailable value is *unknown*; `and`/`or`/`not` follow SQL's
 *   three-valued logic, and a `when` that ends unknown emits nothing (so `not` cannot turn a
 *   value we never saw into a match);
 * - `changed` is true on insert and delete; on update it is false for an unchanged TOASTed
 *   column and true when the old value is unavailable (it may have changed: over-emit rather
 *   than lose a change; `checkMappingAgainstTable` refuses such a mapping anyway);
 * - payload and record leave unavailable columns out (absent, not null: null would claim the
 *   column is NULL); inside a payload list an unavailable value becomes null. The unchanged
 *   TOASTed columns the record lacks are listed (`unchangedColumns`), so a record is never taken
 *   for the whole row when it is not: their value is what it was before the update.
 *
 * Topic templates are built by `topic-template.ts`: a value that cannot name a topic segment costs
 * the change its mapping topic's event only.
 *
 * Moved rows. An update that changes the entity key or the tenant takes the row away from where
 * subscribers hold it: the event says so in `former` (the old key, tenant and image), and its
 * `operation` is CREATED, the row being new where it now is. The old key and tenant are read from
 * the old image: with REPLICA IDENTITY FULL every column; without it the old key when the key
 * changed, and the tenant only when it is a key column — otherwise the tenant is taken as unchanged.
 *
 * Unroutable rows. A row that matched but cannot be routed safely (tenant or key unavailable,
 * or longer than `names.ts` allows; a model stream that is one of Tributary's own,
 * `events/system-topics.ts`; a column its tenant, key, soft delete or `when` reads missing from the
 * change's relation — dropped or renamed since the mapping was saved, added after the change was
 * committed, left out of the publication's column list: `mapping-drift.ts`) makes
 * {@link evaluateChange} throw {@link UnroutableRowError}: the caller logs, counts and skips it. A
 * column only the topic template or the payload reads is no such case: it is a value not sent, as
 * above. A row whose mapping topic alone cannot be built (bad topic value, a topic that is one of
 * Tributary's own) loses only the topic's event: `evaluateChange`
 * returns it without a topic, with the error as `topicProblem` (for the caller to log and count),
 * and its model stream events, which need only the tenant and the key, go out as usual — so
 * `changes` and `records` never disagree about a row because of its topic. Nothing is ever
 * published without a tenant or under a guessed topic.
 */
import { isReservedTopic } from '../../events/system-topics.ts';
import { jsonEqual } from '../../filters/json-compare.ts';
import { type CompiledCondition, compiled, type CompiledOperand, type CompiledPayload } from './mapping-compile.ts';
import { type DomainMapping, mappingTable } from './mapping.ts';
import { columnDrift } from './mapping-drift.ts';
import { keyFrom, tenantFrom, UNAVAILABLE, UnroutableRowError } from './mapping-identity.ts';
import { modelTopic } from './mapping-topics.ts';
import { topicOutcome, type TopicOutcome } from './topic-template.ts';
import type { RowChange, RowOperation } from '../row-change.ts';

export { entityKeyOfRow, UnroutableRowError } from './mapping-identity.ts';
export { encodeTopicSegment } from './topic-template.ts';

export type ModelOperation = 'CREATED' | 'UPDATED' | 'DELETED';

export interface MappedEvent {
  readonly topic: string;
  readonly type: string;
  /** The key columns' values: the text of one column, or each percent-encoded and joined by `/`. */
  readonly entityKey: string;
  readonly tenant: string | undefined;
  readonly payload: Readonly<Record<string, unknown>>;
  /** The row after the change (a delete: the old image), without unavailable columns. */
  readonly record: Readonly<Record<string, unknown>>;
  /**
   * Columns `record` lacks because the update left their TOASTed value unchanged and Postgres did
   * not send it (no REPLICA IDENTITY FULL): their value is the one before the change. Absent when
   * `record` is the whole row (and for a delete, whose record is what the table sends).
   */
  readonly unchangedColumns?: readonly string[];
  readonly operation: ModelOperation;
  /** What the event announces: the row's operation, or "delete"/"insert" for a soft delete/restore. */
  readonly action: RowOperation;
  /**
   * Set when an update moved the row to another entity key or tenant: the row as it was, where
   * subscribers hold it. A DELETED for it goes first on the model stream; `operation` is CREATED
   * (for an update; a soft delete or restore keeps its own).
   */
  readonly former?: FormerRow;
}

/** A row's former entity key and tenant, before an update moved it (see `MappedEvent.former`). */
export interface FormerRow {
  readonly entityKey: string;
  readonly tenant: string | undefined;
  /** The event type of its deletion: the mapping's `type`, else `{model}.deleted`. */
  readonly type: string;
  /** The old image (the old key only without REPLICA IDENTITY FULL). */
  readonly record: Readonly<Record<string, unknown>>;
}

export interface EvaluateMappingOptions {
  /**
   * The table's primary-key columns (`TableShape.primaryKey`, the same the mapping was checked
   * against): the entity key when the mapping sets no `key`. Pass it whenever the table has one:
   * with `REPLICA IDENTITY FULL` the change's key columns are every column, so an entity key
   * taken from them would change with every update. Empty means the table has no primary key.
   * @default the change's `keyColumns` (the replica identity)
   */
  readonly primaryKey?: readonly string[];
  /**
   * The table's generated columns (`TableShape.generatedColumns`), which Postgres does not send: not
   * missing from a change (`mapping-drift.ts`). @default none
   */
  readonly generatedColumns?: readonly string[];
}

const OPERATION: Readonly<Record<RowOperation, ModelOperation>> = {
  insert: 'CREATED',
  update: 'UPDATED',
  delete: 'DELETED',
};
const TYPE_SUFFIX: Readonly<Record<RowOperation, string>> = { insert: 'created', update: 'updated', delete: 'deleted' };
/**
 * Conditions see columns as decoded, where an int8 or numeric arrives as text: numbers, bigints and
 * decimal strings compare by value when at least one side is a number (`eq: ["$row.amount", 10]`
 * holds for "10"); two strings compare as strings — dates and timestamps among them, read as text
 * (`row-values.ts`: `eq: ["$row.day", "2024-06-01"]` holds); lists and objects by content.
 */
const BY_VALUE = { numbers: 'by-value' } as const;

/**
 * A change under its mapping as the source routes it: the model stream's part always, the mapping
 * topic only when this row can build it.
 */
export type EvaluatedChange = Omit<MappedEvent, 'topic'> & TopicOutcome;

/**
 * The event this change produces under the mapping, or undefined when the mapping does not apply
 * (other table, operation not listed, `when` false or unknown). Throws {@link UnroutableRowError}
 * when the change matches but cannot be routed safely, its topic included (see
 * {@link evaluateChange} for the routing that keeps the model stream's part).
 */
export function evaluateMapping(
  mapping: DomainMapping,
  change: RowChange,
  options: EvaluateMappingOptions = {},
): MappedEvent | undefined {
  const evaluated = evaluateChange(mapping, change, options);
  if (evaluated === undefined) return undefined;
  if (evaluated.topic === undefined) throw evaluated.topicProblem;
  return evaluated;
}

/**
 * The change under the mapping, or undefined when the mapping does not apply (as
 * {@link evaluateMapping}). Throws {@link UnroutableRowError} when the change matches but has no
 * tenant or key that can be routed safely; a topic that cannot be built is `topicProblem` instead.
 */
export function evaluateChange(
  mapping: DomainMapping,
  change: RowChange,
  options: EvaluateMappingOptions = {},
): EvaluatedChange | undefined {
  const plan = compiled(mapping);
  const table = mappingTable(mapping);
  if (change.table.schema !== table.schema || change.table.name !== table.name) return undefined;
  const action = actionOf(mapping, change);
  // Per relation and mapping, cached: two lookups per change.
  const drift = columnDrift(mapping, change.relationColumns, options);
  if (drift.routing !== undefined) {
    if (mayAnnounce(mapping, change, action, drift.softDeleteMissing)) throw drift.routing;
    return undefined;
  }
  if (action === undefined || !mapping.events.includes(action)) return undefined;
  if (plan.when !== undefined && test(plan.when, change) !== true) return undefined;
  // Saving refuses such a mapping (`systemTopicProblems`); one stored before that still routes nothing there.
  if (isReservedTopic(modelTopic(mapping))) {
    throw new UnroutableRowError('topic-invalid', mapping.name, `the model stream ${modelTopic(mapping)} is one of Tributary's own topics or a sync documents topic`);
  }
  const tenant = tenantOf(mapping, change);
  // Values are in their JSON form since decoding (`row-values.ts`): every log and `records` see the same.
  const record = recordOf(change);
  const entityKey = entityKeyOf(mapping, change, options.primaryKey);
  const former = formerOf(mapping, change, options.primaryKey, entityKey, tenant);
  return {
    ...topicOutcome(plan, mapping.name, (ref) => resolve({ ref }, change)),
    type: mapping.type ?? `${mapping.model}.${TYPE_SUFFIX[action]}`,
    entityKey,
    tenant,
    payload: plan.payload === undefined ? record : (build(plan.payload, change) as Record<string, unknown>),
    record,
    ...unchangedOf(change, record),
    operation: former && action === 'update' ? 'CREATED' : OPERATION[action],
    action,
    ...(former && { former }),
  };
}

/**
 * Where the row was before an update that changed its entity key or tenant, read from the old
 * image; undefined when neither changed, or when the old image cannot tell (it lacks a key column,
 * or holds a key or tenant no event could have been routed under).
 */
function formerOf(
  mapping: DomainMapping,
  change: RowChange,
  primaryKey: readonly string[] | undefined,
  entityKey: string,
  tenant: string | undefined,
): FormerRow | undefined {
  const old = change.old;
  if (change.operation !== 'update' || old === undefined) return undefined;
  const read = (column: string): unknown => (Object.hasOwn(old, column) ? old[column] : UNAVAILABLE);
  let formerKey: string;
  let formerTenant = tenant;
  try {
    formerKey = keyFrom(mapping, change.table, keyColumnsOf(mapping, change, primaryKey), read);
    const column = mapping.tenantColumn;
    // Not in the old image (no REPLICA IDENTITY FULL, not a key column): taken as unchanged.
    if (column !== undefined && Object.hasOwn(old, column)) formerTenant = tenantFrom(mapping, column, old[column], change.operation);
  } catch (error) {
    if (error instanceof UnroutableRowError) return undefined;
    throw error;
  }
  if (formerKey === entityKey && formerTenant === tenant) return undefined;
  return { entityKey: formerKey, tenant: formerTenant, type: mapping.type ?? `${mapping.model}.${TYPE_SUFFIX.delete}`, record: { ...old } };
}

/**
 * What the change announces under the mapping's soft-delete rule (`mapping.ts`): its own
 * operation, a delete or an insert for a transition, or undefined for a change of a row that is
 * (and stays) soft-deleted. Without an old value the transition is unknown and the change keeps
 * its own operation (`checkMappingAgainstTable` refuses such a mapping anyway).
 */
function actionOf(mapping: DomainMapping, change: RowChange): RowOperation | undefined {
  const column = mapping.softDeleteColumn;
  if (column === undefined) return change.operation;
  const after = change.operation === 'delete' ? UNAVAILABLE : rowValue(change, column);
  const before = change.operation === 'insert' ? null : oldValue(change, column);
  switch (change.operation) {
    case 'insert':
      return isSoftDeleted(after) ? undefined : 'insert';
    case 'delete':
      return isSoftDeleted(before) ? undefined : 'delete';
    case 'update': {
      if (before === UNAVAILABLE || after === UNAVAILABLE) return 'update';
      const was = isSoftDeleted(before);
      const is = isSoftDeleted(after);
      if (was && is) return undefined;
      return was ? 'insert' : is ? 'delete' : 'update';
    }
  }
}

/**
 * Whether the mapping would announce the change (its `when` aside) that a missing column leaves
 * unroutable: by its action, or — the soft-delete column missing, so a soft delete or restore
 * cannot be told — by any action the change's operation could announce.
 */
function mayAnnounce(mapping: DomainMapping, change: RowChange, action: RowOperation | undefined, softDeleteMissing: boolean): boolean {
  if (!softDeleteMissing) return action !== undefined && mapping.events.includes(action);
  return change.operation === 'update' ? mapping.events.length > 0 : mapping.events.includes(change.operation);
}

/** Soft-deleted: anything but NULL or false (an unavailable value is not known to be set). */
function isSoftDeleted(value: unknown): boolean {
  return value !== UNAVAILABLE && value !== null && value !== false;
}

/** `$row.column`: the new row (a delete: the old one); an unchanged TOASTed column from the old row. */
function rowValue(change: RowChange, column: string): unknown {
  const image = change.operation === 'delete' ? change.old : change.new;
  if (image !== undefined && Object.hasOwn(image, column)) return image[column];
  const old = change.old;
  const toasted = change.operation === 'update' && change.unchangedToastColumns.includes(column);
  return toasted && old !== undefined && Object.hasOwn(old, column) ? old[column] : UNAVAILABLE;
}

/** `$old.column`: null on insert; on update the old row, or the key when Postgres sent no old row. */
function oldValue(change: RowChange, column: string): unknown {
  if (change.operation === 'insert') return null;
  if (change.operation === 'delete') return rowValue(change, column);
  if (change.old !== undefined) return Object.hasOwn(change.old, column) ? change.old[column] : UNAVAILABLE;
  // Postgres sends the old key when an update changes it, so no old row means the key is unchanged.
  const now = change.new;
  if (change.keyColumns.includes(column) && now !== undefined && Object.hasOwn(now, column)) return now[column];
  return UNAVAILABLE;
}

function resolve(operand: CompiledOperand, change: RowChange): unknown {
  if ('literal' in operand) return operand.literal;
  const { source, column } = operand.ref;
  return source === 'row' ? rowValue(change, column) : oldValue(change, column);
}

function changed(change: RowChange, column: string): boolean {
  if (change.operation !== 'update') return true;
  if (change.unchangedToastColumns.includes(column)) return false;
  const now = change.new;
  if (now === undefined || !Object.hasOwn(now, column)) return false;
  const before = oldValue(change, column);
  // Without the old value the column may have changed: over-emit rather than lose a change.
  return before === UNAVAILABLE || !jsonEqual(before, now[column], BY_VALUE);
}

/** Three-valued: true, false, or undefined for unknown (a comparison read an unavailable value). */
function test(condition: CompiledCondition, change: RowChange): boolean | undefined {
  switch (condition.op) {
    case 'changed':
      return changed(change, condition.column);
    case 'eq': {
      const left = resolve(condition.left, change);
      const right = resolve(condition.right, change);
      return left === UNAVAILABLE || right === UNAVAILABLE ? undefined : jsonEqual(left, right, BY_VALUE);
    }
    case 'in': {
      const value = resolve(condition.operand, change);
      if (value === UNAVAILABLE) return undefined;
      for (const candidate of condition.values) if (jsonEqual(value, candidate, BY_VALUE)) return true;
      return false;
    }
    case 'and':
    case 'or': {
      // and: false wins, or: true wins; otherwise any unknown makes the result unknown.
      const decisive = condition.op === 'or';
      let unknown = false;
      for (const child of condition.children) {
        const result = test(child, change);
        if (result === decisive) return decisive;
        if (result === undefined) unknown = true;
      }
      return unknown ? undefined : !decisive;
    }
    case 'not': {
      const result = test(condition.child, change);
      return result === undefined ? undefined : !result;
    }
  }
}

function tenantOf(mapping: DomainMapping, change: RowChange): string | undefined {
  const column = mapping.tenantColumn;
  if (column === undefined) return undefined;
  return tenantFrom(mapping, column, rowValue(change, column), change.operation);
}

/** The full row after the change; a delete's old image. Unavailable columns are left out. */
function recordOf(change: RowChange): Record<string, unknown> {
  // Spreading defines own properties, so a column named `__proto__` stays a column.
  if (change.operation === 'delete') return { ...change.old };
  const record: Record<string, unknown> = { ...change.new };
  const old = change.old;
  if (old !== undefined) {
    for (const column of change.unchangedToastColumns) {
      if (Object.hasOwn(old, column)) defineValue(record, column, old[column]);
    }
  }
  return record;
}

/** `unchangedColumns` when the record lacks unchanged TOASTed columns (an update only: see `RowChange.new`). */
function unchangedOf(change: RowChange, record: Readonly<Record<string, unknown>>): { unchangedColumns?: readonly string[] } {
  if (change.operation !== 'update') return {};
  const unchanged = change.unchangedToastColumns.filter((column) => !Object.hasOwn(record, column));
  return unchanged.length > 0 ? { unchangedColumns: unchanged } : {};
}

/** The entity key: the mapping's `key`, else the primary key, else the change's key columns. */
function entityKeyOf(mapping: DomainMapping, change: RowChange, primaryKey: readonly string[] | undefined): string {
  return keyFrom(mapping, change.table, keyColumnsOf(mapping, change, primaryKey), (column) => rowValue(change, column));
}

function keyColumnsOf(mapping: DomainMapping, change: RowChange, primaryKey: readonly string[] | undefined): readonly string[] {
  return mapping.key ?? (primaryKey !== undefined && primaryKey.length > 0 ? primaryKey : change.keyColumns);
}

function build(node: CompiledPayload, change: RowChange): unknown {
  if ('literal' in node || 'ref' in node) return resolve(node, change);
  if ('list' in node) {
    return node.list.map((item) => {
      const value = build(item, change);
      return value === UNAVAILABLE ? null : value;
    });
  }
  const object: Record<string, unknown> = {};
  for (const [key, child] of node.entries) {
    const value = build(child, change);
    if (value !== UNAVAILABLE) object[key] = value;
  }
  return object;
}

function defineValue(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}