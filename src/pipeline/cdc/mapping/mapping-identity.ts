/**
 * A row's identity under a mapping — its entity key and tenant — and the error for a row that has
 * none that can be routed safely. Shared by change evaluation (`mapping-evaluate.ts`, which reads
 * values from a change's images) and model snapshots (rows read from the table).
 */
import { MAX_ENTITY_BYTES, MAX_TENANT_LENGTH } from '../../names.ts';
import type { RowOperation, TableRef } from '../row-change.ts';
import type { DomainMapping } from './mapping.ts';

/** A value Postgres did not send (see `mapping-evaluate.ts`); never confused with SQL NULL. */
export const UNAVAILABLE: unique symbol = Symbol('unavailable');

export type UnroutableReason =
  | 'tenant-unavailable'
  | 'tenant-invalid'
  | 'key-unavailable'
  | 'key-invalid'
  | 'topic-value-invalid'
  | 'topic-invalid'
  /** The change lacks a column the mapping routes or judges it by: dropped or renamed since its save, added after the change was committed, or left out of the publication (`mapping-drift.ts`). */
  | 'column-missing';

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

/**
 * The entity key of a row read from its table (a model snapshot): what a change of that row
 * carries as its `id`. @throws UnroutableRowError when a key column is null (no change of it is routed either).
 */
export function entityKeyOfRow(mapping: DomainMapping, table: TableRef, row: Readonly<Record<string, unknown>>, primaryKey: readonly string[]): string {
  const columns = mapping.key ?? (primaryKey.length > 0 ? primaryKey : []);
  return keyFrom(mapping, table, columns, (column) => (Object.hasOwn(row, column) ? row[column] : UNAVAILABLE));
}

/** The entity key of the key columns' values as `read` gives them. @throws UnroutableRowError */
export function keyFrom(mapping: DomainMapping, table: TableRef, columns: readonly string[], read: (column: string) => unknown): string {
  if (columns.length === 0) {
    const name = `${table.schema}.${table.name}`;
    const why = `${name} has no primary key or replica identity key; add a primary key or set "key"`;
    throw new UnroutableRowError('key-unavailable', mapping.name, why);
  }
  const parts: string[] = [];
  for (const column of columns) {
    const value = read(column);
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

/** The tenant a tenant column's value names. @throws UnroutableRowError when it names none */
export function tenantFrom(mapping: DomainMapping, column: string, value: unknown, operation: RowOperation): string {
  if (value === UNAVAILABLE) {
    const why = `the ${operation} carries no tenant column "${column}"`;
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

/** The text of a scalar key or topic value; undefined for anything else. */
export function textOf(value: unknown): string | undefined {
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
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === '') return 'an empty string';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
