/**
 * `records(ids:)`: the rows of a model named by their entity keys, looked up by key in SQL —
 * `WHERE (key columns) IN (…)`, an index lookup — rather than found by paging the tenant's rows.
 * What a client reads when a change brought a row it does not hold without its TOASTed values
 * (`unchangedColumns`): the SDK's live models do.
 *
 * - **Keys.** An id is what a change's `id` carries (`mapping/mapping-identity.ts`): the mapping's
 *   `key`, else the primary key; one column's text, or several percent-encoded and joined by `/`.
 *   Each part is handed to Postgres as a parameter of its column's type, so the key's index is
 *   used. A row found is answered only if its own entity key is one of the ids asked (a text form
 *   that reads back as the same value but is spelled otherwise — `1.0` for a numeric `1` — names
 *   another entity, as `changes` would): exactly the ids given, never a near one. A key whose id
 *   loses part of the value is never found: a timestamp's id holds milliseconds, not microseconds.
 * - **Not a key.** An id with another number of parts, or a part the column's type does not take
 *   (`abc` for an integer key), matches no row: the read is tried again an id at a time (each
 *   under a savepoint) without those Postgres refuses, as Postgres 15 cannot test a text's
 *   validity for a type (`pg_input_is_valid` is 16's).
 * - **Scope** and filter as the listing's (`model-records.ts`): in SQL, then on each row as the
 *   mapping evaluator sees it (`toNode`).
 */
import type pg from 'pg';
import { ErrorCode, sqlStateOf, SqlStateClass, TributaryError } from '../../errors.ts';
import type { ModelSource } from './cdc-service.ts';
import { mappingTable } from './mapping/mapping.ts';
import { quoteIdent } from './mapping/quote-ident.ts';
import type { TableShape } from './mapping/mapping-check.ts';
import { ROW_TYPES } from './row-values.ts';

/** Ids one `records(ids:)` takes at most: one statement's IN list, and the SDK's batch. */
export const MAX_RECORDS_IDS = 100;

type Mapping = ModelSource['mapping'];

/** A row as a node (the listing's `ModelRecord`, with its entity key as `id`), or undefined when the caller may not see it (the listing's check). */
export type ToNode<N extends { readonly id: string }> = (row: Record<string, unknown>, types: ReadonlyMap<string, number>) => N | undefined;

/**
 * The rows of `ids` (distinct entity keys) the caller may see, in key order, read in the current
 * transaction. @throws MISCONFIGURED for a table without a key.
 */
export async function readRecordsByIds<N extends { readonly id: string }>(
  client: pg.ClientBase,
  mapping: Mapping,
  shape: TableShape,
  tenant: string | undefined,
  ids: readonly string[],
  toNode: ToNode<N>,
): Promise<N[]> {
  const columns = mapping.key ?? shape.primaryKey;
  if (columns.length === 0) {
    throw new TributaryError(ErrorCode.MISCONFIGURED, `The table ${mapping.table} of model "${mapping.model}" needs a primary key (or the mapping a "key") to be read by id`);
  }
  const wanted = new Set(ids);
  const keys = ids.map((id) => keyParts(id, columns.length)).filter((parts) => parts !== undefined);
  if (keys.length === 0) return [];
  let result = await readUnlessRefused(client, byIdsStatement(mapping, columns, tenant, keys));
  if (result === undefined) {
    // A part its column's type does not take (or a tenant the tenant column's type does not): find
    // which, an id at a time, then read the others in one statement (in key order).
    const taken: (readonly string[])[] = [];
    for (const parts of keys) if ((await readUnlessRefused(client, byIdsStatement(mapping, columns, tenant, [parts]))) !== undefined) taken.push(parts);
    if (taken.length === 0) return [];
    result = await readUnlessRefused(client, byIdsStatement(mapping, columns, tenant, taken));
  }
  const types = new Map((result?.fields ?? []).map((field) => [field.name, field.dataTypeID]));
  const nodes: N[] = [];
  for (const row of result?.rows ?? []) {
    const node = toNode(row, types);
    if (node && wanted.has(node.id)) nodes.push(node);
  }
  return nodes;
}

/** A read under a savepoint; undefined when Postgres refuses a value for its column's type (22xxx). */
async function readUnlessRefused(client: pg.ClientBase, statement: { text: string; values: unknown[] }): Promise<pg.QueryResult<Record<string, unknown>> | undefined> {
  await client.query('SAVEPOINT tributary_ids');
  try {
    const result = await client.query<Record<string, unknown>>({ ...statement, types: ROW_TYPES });
    await client.query('RELEASE SAVEPOINT tributary_ids');
    return result;
  } catch (error) {
    if (!sqlStateOf(error)?.startsWith(SqlStateClass.DATA_EXCEPTION)) throw error;
    await client.query('ROLLBACK TO SAVEPOINT tributary_ids');
    return undefined;
  }
}

/** The key columns' texts an id spells (`keyFrom`'s form read back); undefined when it spells none. */
export function keyParts(id: string, columns: number): string[] | undefined {
  if (columns === 1) return [id];
  const parts = id.split('/');
  if (parts.length !== columns) return undefined;
  try {
    return parts.map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

/**
 * The rows of `keys`: the caller's tenant, not soft-deleted, in key order. The parts are untyped
 * parameters, which Postgres types as the columns they are compared with (so the index is used).
 */
function byIdsStatement(mapping: Mapping, columns: readonly string[], tenant: string | undefined, keys: readonly (readonly string[])[]): { text: string; values: unknown[] } {
  const table = mappingTable(mapping);
  const values: unknown[] = [];
  const where: string[] = [];
  const key = columns.map((column) => `t.${quoteIdent(column)}`);
  where.push(...visibleRowConditions(mapping, tenant, values));
  const tuples = keys.map((parts) => {
    const placeholders = parts.map((part) => {
      values.push(part);
      return `$${values.length}`;
    });
    return placeholders.length === 1 ? placeholders[0]! : `(${placeholders.join(', ')})`;
  });
  where.push(`${key.length === 1 ? key[0]! : `(${key.join(', ')})`} IN (${tuples.join(', ')})`);
  const text = `SELECT t.* FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)} AS t WHERE ${where.join(' AND ')} ORDER BY ${key.join(', ')}`;
  return { text, values };
}

/**
 * The conditions on `t` of a row the caller may list, shared by the listing and the lookup by key:
 * in the caller's tenant (its value pushed onto `values`), and not soft-deleted — the evaluator's
 * rule: deleted while neither NULL nor false, whatever the column's type.
 */
export function visibleRowConditions(mapping: Pick<Mapping, 'tenantColumn' | 'softDeleteColumn'>, tenant: string | undefined, values: unknown[]): string[] {
  const where: string[] = [];
  if (mapping.tenantColumn !== undefined) {
    values.push(tenant);
    where.push(`t.${quoteIdent(mapping.tenantColumn)} = $${values.length}`);
  }
  if (mapping.softDeleteColumn !== undefined) {
    const column = `t.${quoteIdent(mapping.softDeleteColumn)}`;
    where.push(`(${column} IS NULL OR to_jsonb(${column}) = 'false'::jsonb)`);
  }
  return where;
}
