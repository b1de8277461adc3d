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
 *   column is NULL); inside a payload list an unavailable value becomes null.
 *
 * Topic templates. A placeholder `{$row.col}` / `{$old.col}` is replaced by the value's text,
 * encoded by {@link encodeTopicSegment} so it stays inside one segment: letters, digits, `_` and
 * `-` are kept, every other byte becomes `:XX`. A row value can therefore never add a `.` level
 * (permissions are prefixes of the topic hierarchy, `auth/permissions.ts`) nor collide with
 * another value. A null, empty, non-scalar or unavailable value makes the row unroutable.
 *
 * Unroutable rows. A row that matched but cannot be routed safely (tenant or key unavailable,
 * or longer than `names.ts` allows; bad topic value) makes `evaluateMapping` throw {@link UnroutableRowError}: the caller logs,
 * counts and skips it. It is never published without a tenant or under a guessed topic.
 */
import { jsonEqual } from '../../filters/json-compare.ts';
import {
  type CompiledCondition,
  compiled,
  type CompiledMapping,
  type CompiledOperand,
  type CompiledPayload,
  isValidName,
} from './mapping-compile.ts';
import { type DomainMapping, mappingTable } from './mapping.ts';
import { MAX_ENTITY_BYTES, MAX_TENANT_LENGTH } from '../../names.ts';
import type { RowChange, RowOperation, TableRef } from '../row-change.ts';

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
  readonly operation: ModelOperation;
  /** What the event announces: the row's operation, or "delete"/"insert" for a soft delete/restore. */
  readonly action: RowOperation;
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
}

export type UnroutableReason =
  | 'tenant-unavailable'
  | 'tenant-invalid'
  | 'key-unavailable'
  | 'key-invalid'
  | 'topic-value-invalid'
  | 'topic-invalid';

/** A matching row that cannot be routed safely. The message names columns, never row values. */
export class UnroutableRowError extends Error {
  readonly reason: UnroutableReason;
  readonly mapping: string;

  constructor(reason: UnroutableReason, mapping: string, message: string) {
    super(`mapping ${mapping}: ${message}`);
    this.name = 'UnroutableRowError';
    this.reason = reason;
    this.mapping = mapping;
  }
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
 * holds for "10"); two strings compare as strings; dates by instant; lists and objects by content.
 */
const BY_VALUE = { numbers: 'by-value' } as const;

/** A value Postgres did not send (see the module comment); never confused with SQL NULL. */
const UNAVAILABLE: unique symbol = Symbol('unavailable');

/**
 * The event this change produces under the mapping, or undefined when the mapping does not apply
 * (other table, operation not listed, `when` false or unknown). Throws {@link UnroutableRowError}
 * when the change matches but cannot be routed safely.
 */
export function evaluateMapping(
  mapping: DomainMapping,
  change: RowChange,
  options: EvaluateMappingOptions = {},
): MappedEvent | undefined {
  const plan = compiled(mapping);
  const table = mappingTable(mapping);
  if (change.table.schema !== table.schema || change.table.name !== table.name) return undefined;
  const action = actionOf(mapping, change);
  if (action === undefined || !mapping.events.includes(action)) return undefined;
  if (plan.when !== undefined && test(plan.when, change) !== true) return undefined;
  const tenant = tenantOf(mapping, change);
  const record = recordOf(change);
  return {
    topic: topicOf(plan, mapping.name, change),
    type: mapping.type ?? `${mapping.model}.${TYPE_SUFFIX[action]}`,
    entityKey: entityKeyOf(mapping, change, options.primaryKey),
    tenant,
    payload: plan.payload === undefined ? record : (build(plan.payload, change) as Record<string, unknown>),
    record,
    operation: OPERATION[action],
    action,
  };
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

/** Soft-deleted: anything but NULL or false (an unavailable value is not known to be set). */
function isSoftDeleted(value: unknown): boolean {
  return value !== UNAVAILABLE && value !== null && value !== false;
}

/**
 * A value as it appears inside a templated topic: letters, digits, `_` and `-` unchanged, every
 * other UTF-8 byte as `:XX` (`in progress` → `in:20progress`, `a.b` → `a:2Eb`). Injective, and
 * never a `.`, so a value stays one segment. Clients use it to name the topic for a value.
 */
export function encodeTopicSegment(text: string): string {
  if (/^[A-Za-z0-9_-]*$/.test(text)) return text;
  return encodeURIComponent(text.toWellFormed())
    .replace(/[.!~*'()]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll('%', ':');
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
  const value = rowValue(change, column);
  if (value === UNAVAILABLE) {
    const why = `the ${change.operation} carries no tenant column "${column}"`;
    const fix = 'deletes need REPLICA IDENTITY FULL or the tenant in the key';
    throw new UnroutableRowError('tenant-unavailable', mapping.name, `${why} (${fix})`);
  }
  if ((typeof value === 'string' && value !== '') || typeof value === 'number' || typeof value === 'bigint') {
    const tenant = String(value);
    // It goes into indexed columns (names.ts): past the limit it would fail the routing of the whole chunk.
    if (tenant.length > MAX_TENANT_LENGTH) {
      throw new UnroutableRowError('tenant-invalid', mapping.name, `the tenant column "${column}" holds ${tenant.length} characters, over ${MAX_TENANT_LENGTH}`);
    }
    return tenant;
  }
  const why = `the tenant column "${column}" holds ${describe(value)}, not a tenant id`;
  throw new UnroutableRowError('tenant-invalid', mapping.name, why);
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

/**
 * The entity key of a row read from its table (a model snapshot): what a change of that row
 * carries as its `id`. @throws UnroutableRowError when a key column is null (no change of it is routed either).
 */
export function entityKeyOfRow(mapping: DomainMapping, table: TableRef, row: Readonly<Record<string, unknown>>, primaryKey: readonly string[]): string {
  const change: RowChange = { operation: 'insert', table, keyColumns: [], new: row, old: undefined, unchangedToastColumns: [], lsn: '0/0' };
  return entityKeyOf(mapping, change, primaryKey);
}

/** The entity key: the mapping's `key`, else the primary key, else the change's key columns. */
function entityKeyOf(mapping: DomainMapping, change: RowChange, primaryKey: readonly string[] | undefined): string {
  const columns = mapping.key ?? (primaryKey !== undefined && primaryKey.length > 0 ? primaryKey : change.keyColumns);
  if (columns.length === 0) {
    const table = `${change.table.schema}.${change.table.name}`;
    const why = `${table} has no primary key or replica identity key; add a primary key or set "key"`;
    throw new UnroutableRowError('key-unavailable', mapping.name, why);
  }
  const parts: string[] = [];
  for (const column of columns) {
    const value = rowValue(change, column);
    const text = value === UNAVAILABLE || value === null ? undefined : textOf(value);
    if (text === undefined) {
      const what = value === UNAVAILABLE ? 'not in the row image' : describe(value);
      throw new UnroutableRowError('key-unavailable', mapping.name, `key column "${column}" is ${what}`);
    }
    parts.push(text);
  }
  const key = parts.length === 1 ? (parts[0] as string) : parts.map((part) => encodeURIComponent(part.toWellFormed())).join('/');
  // Part of the event's entity, which goes into indexed columns (names.ts): bounded in bytes of the
  // key as stored (composite parts encoded), so long URL keys and non-Latin keys still route.
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_ENTITY_BYTES) {
    throw new UnroutableRowError('key-invalid', mapping.name, `the entity key of columns ${columns.map((column) => `"${column}"`).join(', ')} is ${bytes} bytes, over ${MAX_ENTITY_BYTES}`);
  }
  return key;
}

function topicOf(plan: CompiledMapping, mapping: string, change: RowChange): string {
  const first = plan.topic[0];
  if (plan.topic.length === 1 && typeof first === 'string') return first;
  let topic = '';
  for (const part of plan.topic) {
    if (typeof part === 'string') {
      topic += part;
      continue;
    }
    const value = part.source === 'row' ? rowValue(change, part.column) : oldValue(change, part.column);
    const text = value === UNAVAILABLE || value === null ? undefined : textOf(value);
    if (text === undefined || text === '') {
      const what = value === UNAVAILABLE ? 'unavailable' : describe(value);
      const placeholder = `{$${part.source}.${part.column}}`;
      throw new UnroutableRowError('topic-value-invalid', mapping, `topic placeholder ${placeholder} is ${what}`);
    }
    topic += encodeTopicSegment(text);
  }
  if (!isValidName('topic', topic)) {
    const why = `the topic built from the row is not a valid topic name (${topic.length} characters)`;
    throw new UnroutableRowError('topic-invalid', mapping, why);
  }
  return topic;
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

/** The text of a scalar key or topic value; undefined for anything else. */
function textOf(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value);
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  // bytea, spelled as Postgres prints it.
  if (value instanceof Uint8Array) {
    return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  }
  return undefined;
}

/** Names the kind of a value for an error message without revealing it. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === '') return 'an empty string';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function defineValue(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}