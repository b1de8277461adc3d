/**
 * Model snapshots (`records`, issue 13 §1): a page of a model's current rows, read from its CDC
 * source database, in the record shape of `changes`, with a stream position to join `changes`
 * from without a race (`model-snapshot-cursor.ts` says how the two fit).
 *
 * - **Snapshot.** The first page reads the model stream's log head, then opens a REPEATABLE READ,
 *   READ ONLY transaction (with `statement_timeout`) and records its snapshot
 *   (`pg_current_snapshot()`) and the WAL insert position after it. A transaction the snapshot
 *   lists as in progress but that is already committed in the commit log may have been decoded
 *   and logged before the head was read while still invisible to the snapshot (its backend had
 *   not yet left the process array): the page is read again with a new head and snapshot, a few
 *   times at most, then answered UNAVAILABLE.
 * - **Later pages** are read in a transaction of their own and keep the first page's `cursor`. A
 *   row version the first snapshot did not see (its `xmin` committed later) is left out: the
 *   stream delivers that row's changes after the cursor, in order, so the client's list never
 *   shows a version older than one it had (rows changed during paging arrive from the stream).
 *   The page names such a row (`pending`: its id and place among the nodes) when the caller
 *   could see its version: a client can wait for its change and show it in key order.
 * - **Keyset pagination** on the primary key (else the mapping's `key`), `first` rows at most.
 *   Filters are evaluated in the process with `changes`' own evaluator (`filters/model-filter.ts`),
 *   so both agree exactly (SQL comparisons differ: collations, numeric text); a page reads at most
 *   `scanLimit` rows, so a selective filter can answer a short (even empty) page with
 *   `hasNextPage`: follow `endCursor`.
 * - **By id** (`ids`): the rows of those entity keys, looked up by key in one page read at a snapshot
 *   of its own, as a first page's (`model-records-by-id.ts`).
 * - **Scope.** Only the caller's tenant (`tenantColumn = tenant`, from the token) and rows not
 *   soft-deleted (`softDeleteColumn` NULL or false), in SQL and checked again on each row as the
 *   mapping evaluator would see it. A principal whose tenancy does not fit the mapping (a tenant
 *   on a mapping without `tenantColumn`, or none on one with it) sees no rows, as with `changes`.
 */
import type pg from 'pg';
import { isConnectionFailure } from '../../db/connection-failure.ts';
import { ErrorCode, isTributaryError, SqlState, SqlStateClass, sqlStateOf, TributaryError } from '../../errors.ts';
import { matchesModelFilter, type ModelFilter } from '../filters/model-filter.ts';
import type { ModelSource } from './cdc-service.ts';
import { entityKeyOfRow, UnroutableRowError } from './mapping/mapping-evaluate.ts';
import { mappingTable } from './mapping/mapping.ts';
import { quoteIdent } from './mapping/quote-ident.ts';
import { readRecordsByIds, visibleRowConditions } from './model-records-by-id.ts';
import { columnValue, ROW_TYPES } from './row-values.ts';
import { describeTable } from './mapping/table-catalog.ts';
import type { TableShape } from './mapping/mapping-check.ts';
import {
  decodeSnapshotCursor,
  encodePageCursor,
  invalidPageCursor,
  encodeSnapshotCursor,
  MAX_SNAPSHOT_IN_PROGRESS,
  snapshotSawVersion,
  type ModelSnapshot,
  type PageCursor,
} from './model-snapshot-cursor.ts';
import { snapshotWindow } from './wal/snapshot-window.ts';

export interface ModelRecordsQuery {
  readonly source: ModelSource;
  /** From the token; undefined for an application-wide principal. */
  readonly tenant: string | undefined;
  readonly filter: ModelFilter;
  /** Rows per page, 1 … MAX_RECORDS_PAGE. */
  readonly first: number;
  readonly after: PageCursor | undefined;
  /** Distinct entity keys (at most MAX_RECORDS_IDS): only their rows, on one page (`first` and `after` do not apply). */
  readonly ids?: readonly string[];
  /** Reads the model stream's log head (a cursor); called before the first page's snapshot. */
  readonly streamHead: () => Promise<string>;
}

export interface ModelRecordsOptions {
  /** Longest statement of a page read, in ms. */
  readonly statementTimeoutMs: number;
  /** Rows a page reads at most (filtered rows count). @default 10 × first, at least 1,000, at most 10,000 */
  readonly scanLimit?: number;
}

/** One row as `changes` would carry it: the model, the entity key and the full record. */
export interface ModelRecord {
  readonly model: string;
  readonly id: string;
  readonly record: Readonly<Record<string, unknown>>;
}

/** A row a later page left out because its version is newer than the first page's snapshot. */
export interface PendingRecord {
  readonly id: string;
  /** Where it belongs among the page's nodes: before `nodes[index]` (`nodes.length`: after the last). */
  readonly index: number;
}

export interface ModelRecordsPage {
  readonly nodes: readonly ModelRecord[];
  /** Rows left out of this page for a version the first page's snapshot did not see; the stream brings each. */
  readonly pending: readonly PendingRecord[];
  /** Pass as `after` for the next page; null when the page read no row. */
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
  /** The snapshot cursor: `changes(after:)` joins the stream here (the same on every page of a listing). */
  readonly cursor: string;
  /**
   * The source database's clock when this page was read (its snapshot taken), to ms — the clock
   * `changes`' `lastUpdatedAt` (commit times) is read from, so a client can compare the two.
   */
  readonly readAt: Date;
}

export const DEFAULT_RECORDS_PAGE = 100;
export const MAX_RECORDS_PAGE = 1000;
const MAX_SCAN_ROWS = 10_000;
const CHUNK_ROWS = 1000;
const SNAPSHOT_ATTEMPTS = 5;
/** Helper columns read beside the row's own; their names cannot collide with a sane column. */
const KEY_COLUMN = '__tributary_key';
const XMIN_COLUMN = '__tributary_xmin';

/**
 * A page of the model's rows. Throws UNAVAILABLE (retryable: the SDK's live models retry it) while
 * the source database cannot be reached or a statement takes too long, BAD_USER_INPUT for a page
 * cursor of another model, MISCONFIGURED for a table that is gone or has no key, and for a source
 * URL the database refuses for good (failed authentication, a database that does not exist).
 */
export async function readModelRecords(query: ModelRecordsQuery, options: ModelRecordsOptions): Promise<ModelRecordsPage> {
  let connected = false;
  try {
    return await query.source.connections.withClient(async (client) => {
      connected = true;
      for (let attempt = 1; ; attempt += 1) {
        const page = await readPage(client, query, options);
        if (page !== 'retry') return page;
        if (attempt >= SNAPSHOT_ATTEMPTS) {
          throw new TributaryError(ErrorCode.UNAVAILABLE, 'The model snapshot could not be taken consistently (transactions were committing); retry', {
            details: { reason: 'snapshot-unsettled' },
          });
        }
      }
    });
  } catch (error) {
    if (isTributaryError(error) || (connected && !isConnectionFailure(error))) throw error;
    // A connection the source refuses for good (its credentials, its database gone): no retry helps.
    const refused = connected ? undefined : refusedSource(error);
    if (refused) throw refused;
    // No connection at all (refused, a pool timeout, a database not accepting connections, a
    // server starting up) or one lost on the way (a restart, a terminated backend): the source is
    // away for now, which a client should retry rather than give up on.
    throw new TributaryError(ErrorCode.UNAVAILABLE, "The model's source database cannot be reached right now; retry shortly", {
      cause: error,
      details: { reason: 'source-unreachable' },
    });
  }
}

/** SQLSTATE class `28xxx`: the role or its credentials were refused (a wrong password, an unknown role, pg_hba). */
const INVALID_AUTHORIZATION_CLASS = '28';

/**
 * MISCONFIGURED for a connection the source database refuses for good, else undefined. The message
 * names neither the role nor the database (the caller is any reader of the model); the cause has them.
 */
function refusedSource(error: unknown): TributaryError | undefined {
  const state = sqlStateOf(error);
  if (state?.length === 5 && state.startsWith(INVALID_AUTHORIZATION_CLASS)) {
    return new TributaryError(
      ErrorCode.MISCONFIGURED,
      "The model's source database refuses the credentials of its configured URL; an administrator must correct the CDC source (setCdcSource)",
      { cause: error, details: { reason: 'source-auth-failed' } },
    );
  }
  // The URL names a database that does not exist (dropped or renamed since it was set).
  if (state === SqlState.INVALID_CATALOG_NAME) {
    return new TributaryError(
      ErrorCode.MISCONFIGURED,
      "The database named by the model's source URL does not exist; an administrator must correct the CDC source (setCdcSource)",
      { cause: error, details: { reason: 'source-database-missing' } },
    );
  }
  return undefined;
}

async function readPage(client: pg.ClientBase, query: ModelRecordsQuery, options: ModelRecordsOptions): Promise<ModelRecordsPage | 'retry'> {
  // Read before the snapshot: every change the snapshot misses is logged after this position.
  const head = query.after === undefined ? await query.streamHead() : undefined;
  let cursor: string | undefined;
  let readAt: Date | undefined;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.trunc(options.statementTimeoutMs))}`);
    let snapshot: ModelSnapshot;
    if (query.after === undefined) {
      const taken = await takeSnapshot(client);
      if (taken.unsettled) {
        await client.query('ROLLBACK');
        return 'retry';
      }
      readAt = new Date(Number(taken.readAtMs));
      snapshot = { after: head!, source: query.source.sourceId, window: snapshotWindow(taken.snapshot, taken.lsn) };
      if (snapshot.window.inProgress.size > MAX_SNAPSHOT_IN_PROGRESS) {
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'Too many transactions in progress to take a model snapshot; retry', { details: { reason: 'snapshot-too-large' } });
      }
      cursor = encodeSnapshotCursor(snapshot);
    } else {
      cursor = query.after.snapshot;
      snapshot = decodeSnapshotCursor(cursor);
    }
    const current = query.after === undefined ? { xmax: snapshot.window.xmax, readAt: readAt! } : await pageSnapshot(client);
    const page = query.ids === undefined ? await scan(client, query, options, { snapshot, cursor, currentXmax: current.xmax }) : await byIds(client, query, query.ids);
    await client.query('COMMIT');
    return { ...page, cursor, readAt: current.readAt };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    // A tenant or key the column's type cannot hold (a tenant id that is no uuid) matches no row.
    const state = sqlStateOf(error);
    if (cursor !== undefined && state?.startsWith(SqlStateClass.DATA_EXCEPTION)) return { nodes: [], pending: [], endCursor: null, hasNextPage: false, cursor, readAt: readAt ?? new Date() };
    if (state === SqlState.INSUFFICIENT_PRIVILEGE) throw selectDenied(query.source.mapping, error);
    if (state === SqlState.QUERY_CANCELED) {
      throw new TributaryError(ErrorCode.UNAVAILABLE, 'Reading the model took too long; retry', { cause: error, details: { reason: 'statement-timeout' } });
    }
    throw error;
  }
}

/**
 * The database's clock now, in ms since the epoch as text: read as text, whatever type parsers
 * the source's pool has; truncated to ms, as commit times are (`Date`).
 */
const CLOCK_MS = `floor(extract(epoch FROM clock_timestamp()) * 1000)::int8::text`;

/**
 * The snapshot, the WAL position after it, whether a transaction it lists as in progress is
 * already committed, and the database's clock (all in the one statement that takes the snapshot,
 * so the look is immediate).
 */
async function takeSnapshot(client: pg.ClientBase): Promise<{ snapshot: string; lsn: string; unsettled: boolean; readAtMs: string }> {
  const { rows } = await client.query<{ snapshot: string; lsn: string; unsettled: boolean; readAtMs: string }>(
    `SELECT pg_current_snapshot()::text AS snapshot, pg_current_wal_insert_lsn()::text AS lsn,
            EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot()) AS x WHERE pg_xact_status(x) = 'committed') AS unsettled,
            ${CLOCK_MS} AS "readAtMs"`,
  );
  return rows[0]!;
}

/** The xmax of this transaction's snapshot, as a 32-bit xid (what a row's `xmin` holds), and the database's clock. */
async function pageSnapshot(client: pg.ClientBase): Promise<{ xmax: number; readAt: Date }> {
  const { rows } = await client.query<{ xmax: string; readAtMs: string }>(
    `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax, ${CLOCK_MS} AS "readAtMs"`,
  );
  return { xmax: Number(BigInt(rows[0]!.xmax) & 0xffff_ffffn), readAt: new Date(Number(rows[0]!.readAtMs)) };
}

/** The listing's snapshot and cursor, and the xmax of the snapshot reading this page. */
interface PageSnapshot {
  readonly snapshot: ModelSnapshot;
  readonly cursor: string;
  readonly currentXmax: number;
}

/**
 * MISCONFIGURED for a source role that may not read the table (insufficient_privilege): REPLICATION
 * streams its changes without SELECT, so only `records` meets it. Names the grant to run, but not
 * the role: any reader of the model gets this answer, and the source's login is the operators'.
 */
function selectDenied(mapping: ModelSource['mapping'], error: unknown): TributaryError {
  const table = mappingTable(mapping);
  const grant = `GRANT SELECT ON ${quoteIdent(table.schema)}.${quoteIdent(table.name)} TO <the role of the source's URL>`;
  return new TributaryError(ErrorCode.MISCONFIGURED, `The role of the model's source database may not read ${mapping.table}; an administrator must run: ${grant}`, {
    cause: error,
    details: { reason: 'source-select-denied' },
  });
}

/** The model's table, or MISCONFIGURED when it is gone. */
async function tableShape(client: pg.ClientBase, mapping: ModelSource['mapping']): Promise<TableShape> {
  const shape = await describeTable(client, mappingTable(mapping));
  if (!shape) throw new TributaryError(ErrorCode.MISCONFIGURED, `The table ${mapping.table} of model "${mapping.model}" does not exist in its source database`);
  return shape;
}

/** The rows of `ids`: no later page, none left out (the page's snapshot is the one it read at). */
async function byIds(client: pg.ClientBase, query: ModelRecordsQuery, ids: readonly string[]): Promise<Omit<ModelRecordsPage, 'cursor' | 'readAt'>> {
  const { mapping } = query.source;
  const visible = (mapping.tenantColumn === undefined) === (query.tenant === undefined);
  const shape = await tableShape(client, mapping);
  const nodes = visible ? await readRecordsByIds(client, mapping, shape, query.tenant, ids, (row, types) => nodeOf(query, row, types, shape.primaryKey)) : [];
  return { nodes, pending: [], endCursor: null, hasNextPage: false };
}

async function scan(client: pg.ClientBase, query: ModelRecordsQuery, options: ModelRecordsOptions, read: PageSnapshot): Promise<Omit<ModelRecordsPage, 'cursor' | 'readAt'>> {
  const { cursor } = read;
  const { mapping } = query.source;
  const shape = await tableShape(client, mapping);
  const order = shape.primaryKey.length > 0 ? shape.primaryKey : (mapping.key ?? []);
  if (order.length === 0) {
    throw new TributaryError(ErrorCode.MISCONFIGURED, `The table ${mapping.table} of model "${mapping.model}" needs a primary key (or the mapping a "key") to be listed`);
  }
  // Another model's cursor (or one from before the table's key changed) would compare keys of another shape.
  if (query.after !== undefined && ((query.after.model !== undefined && query.after.model !== mapping.model) || query.after.key.length !== order.length)) throw invalidPageCursor();
  const visible = (mapping.tenantColumn === undefined) === (query.tenant === undefined);
  const budget = options.scanLimit ?? Math.min(MAX_SCAN_ROWS, Math.max(query.first * 10, CHUNK_ROWS));
  const laterPage = query.after !== undefined;
  const nodes: ModelRecord[] = [];
  const pending: PendingRecord[] = [];
  let lastKey = query.after?.key;
  let scanned = 0;
  let more = visible;
  while (more && nodes.length < query.first && scanned < budget) {
    const limit = Math.min(CHUNK_ROWS, budget - scanned);
    const { text, values } = pageStatement(mapping, order, query.tenant, lastKey, limit);
    const { rows, fields } = await client.query<Record<string, unknown>>({ text, values, types: ROW_TYPES });
    const types = new Map(fields.map((field) => [field.name, field.dataTypeID]));
    more = rows.length === limit;
    for (let i = 0; i < rows.length; i += 1) {
      const row = rows[i]!;
      scanned += 1;
      lastKey = row[KEY_COLUMN] as string[];
      const node = nodeOf(query, row, types, shape.primaryKey);
      if (node && laterPage && !snapshotSawVersion(read.snapshot.window, Number(row[XMIN_COLUMN]), read.currentXmax)) pending.push({ id: node.id, index: nodes.length });
      else if (node) nodes.push(node);
      if (nodes.length === query.first) {
        more ||= i < rows.length - 1;
        break;
      }
    }
  }
  return { nodes, pending, hasNextPage: more, endCursor: lastKey === undefined || lastKey === query.after?.key ? null : encodePageCursor({ model: mapping.model, key: lastKey, snapshot: cursor }) };
}

/**
 * A row as a node, or undefined when the caller may not see it (again checked as the mapping
 * evaluator sees rows). Its values take the forms the WAL reader gives them (`row-values.ts`:
 * parsed by `ROW_TYPES`, then `columnValue`), for the key, the scope, the filter and the record.
 */
function nodeOf(query: ModelRecordsQuery, row: Record<string, unknown>, types: ReadonlyMap<string, number>, primaryKey: readonly string[]): ModelRecord | undefined {
  const { mapping } = query.source;
  const decoded: Record<string, unknown> = {};
  for (const column of Object.keys(row)) {
    if (column === KEY_COLUMN || column === XMIN_COLUMN) continue;
    // Defined, not assigned: a column named `__proto__` stays a column.
    Object.defineProperty(decoded, column, { value: columnValue(row[column], types.get(column)), enumerable: true, writable: true, configurable: true });
  }
  if (mapping.tenantColumn !== undefined && tenantText(decoded[mapping.tenantColumn]) !== query.tenant) return undefined;
  if (mapping.softDeleteColumn !== undefined && isSoftDeleted(decoded[mapping.softDeleteColumn])) return undefined;
  if (!matchesModelFilter(query.filter, decoded)) return undefined;
  try {
    return { model: mapping.model, id: entityKeyOfRow(mapping, mappingTable(mapping), decoded, primaryKey), record: decoded };
  } catch (error) {
    // A row whose key is null is never routed as a change either.
    if (error instanceof UnroutableRowError) return undefined;
    throw error;
  }
}

/** One chunk: the caller's tenant, not soft-deleted, after the last key, in key order. */
function pageStatement(
  mapping: ModelSource['mapping'],
  order: readonly string[],
  tenant: string | undefined,
  after: readonly string[] | undefined,
  limit: number,
): { text: string; values: unknown[] } {
  const table = mappingTable(mapping);
  const values: unknown[] = [];
  const where: string[] = [];
  const columns = order.map((column) => `t.${quoteIdent(column)}`);
  where.push(...visibleRowConditions(mapping, tenant, values));
  if (after !== undefined) {
    const placeholders = after.map((part) => {
      values.push(part);
      return `$${values.length}`;
    });
    where.push(`(${columns.join(', ')}) > (${placeholders.join(', ')})`);
  }
  values.push(limit);
  const text =
    `SELECT t.*, t.xmin::text AS "${XMIN_COLUMN}", ARRAY[${columns.map((column) => `${column}::text`).join(', ')}] AS "${KEY_COLUMN}"` +
    ` FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)} AS t` +
    (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${columns.join(', ')} LIMIT $${values.length}`;
  return { text, values };
}

/** The tenant as the mapping evaluator reads it from a row (a non-empty string or a number). */
function tenantText(value: unknown): string | undefined {
  if ((typeof value === 'string' && value !== '') || typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

function isSoftDeleted(value: unknown): boolean {
  return value !== null && value !== false;
}
