/**
 * The outbox table's contract: one function per SQL statement (graphile-worker style), so every
 * statement the platform runs against an application's outbox is in this file and nowhere else
 * (but WAL mode's catch-up and clean-up, in `outbox-wal-sql.ts`).
 *
 * The table lives in the application's database and belongs to its operator; the name is theirs to
 * choose (`name` or `schema.name`). It is validated once with a strict pattern and always quoted,
 * so a table name can never become SQL.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { payloadFault, type OutboxRow } from './outbox-row.ts';

/** What the statements run on: a pool or a checked-out client (inside a transaction). */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/** A validated, quoted table reference (`"schema"."name"` or `"name"`). */
export interface OutboxTable {
  /** As the operator wrote it, e.g. `app.event_outbox`. */
  readonly name: string;
  /** Quoted for SQL, e.g. `"app"."event_outbox"`. */
  readonly sql: string;
  /** The bare name, unquoted, for deriving index names. */
  readonly bare: string;
}

export const DEFAULT_OUTBOX_TABLE = 'event_outbox';

/** Lower-case identifiers only: what an unquoted name means in Postgres, so `psql` users see the same table. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function outboxTable(name: string): OutboxTable {
  const parts = name.split('.');
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new TributaryError(
      ErrorCode.BAD_USER_INPUT,
      'Invalid table: use name or schema.name, each 1–63 characters of lower-case letters, digits and _, not starting with a digit',
      { details: { field: 'table' } },
    );
  }
  const bare = parts.at(-1)!;
  return { name, sql: parts.map((part) => `"${part}"`).join('.'), bare };
}

/**
 * The outbox's indexes. `createTable` builds them only with the table: a plain CREATE INDEX —
 * even `IF NOT EXISTS`, even when the index exists — takes a SHARE lock on the table, queued behind
 * any open writer and blocking every INSERT of the application queued behind it. On an existing
 * table, a missing one is reported (`missingIndexStatements`) for its operator to build
 * CONCURRENTLY (README, "The outbox"); an outbox made by an earlier version's DDL works without
 * them, only slower.
 */
const OUTBOX_INDEXES: readonly { readonly suffix: string; readonly why: string; readonly on: string }[] = [
  { suffix: 'pending_idx', why: "The pollers' scan: only pending rows, in id order.", on: '(id) WHERE processed_at IS NULL' },
  { suffix: 'processed_idx', why: 'The retention sweep: processed rows by age.', on: '(processed_at)' },
  { suffix: 'dead_idx', why: "The status's dead count (every few seconds): the dead rows only, not the retention's processed ones.", on: '(id) WHERE dead_reason IS NOT NULL' },
];

function createIndex(table: OutboxTable, index: (typeof OUTBOX_INDEXES)[number], concurrently: boolean): string {
  return `CREATE INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF NOT EXISTS "${indexName(table.bare, index.suffix)}" ON ${table.sql} ${index.on};`;
}

/**
 * The DDL an operator runs (or `createTable` runs) to create the outbox; idempotent. Everything in
 * one block that runs only when the table does not exist yet: it never locks an outbox in use.
 */
export function outboxTableDdl(table: OutboxTable): string {
  const indexes = OUTBOX_INDEXES.map((index) => `    -- ${index.why}\n    ${createIndex(table, index, false)}`).join('\n');
  // The quoted name is validated (outboxTable): safe inside a string literal.
  return `DO $outbox$
BEGIN
  IF to_regclass('${table.sql}') IS NULL THEN
    CREATE TABLE IF NOT EXISTS ${table.sql} (
      id bigserial PRIMARY KEY,
      topic text NOT NULL,
      event_type text NOT NULL,
      payload jsonb NOT NULL,
      tenant text,
      entity text,
      table_name text,
      operation text CHECK (operation IS NULL OR operation IN ('insert', 'update', 'delete')),
      created_at timestamptz NOT NULL DEFAULT now(),
      processed_at timestamptz,
      dead_reason text
    );
${indexes}
  END IF;
END
$outbox$;
`;
}

/**
 * For an existing table, the statements that build the outbox's indexes it has none of (by name),
 * without blocking its writers: `CREATE INDEX CONCURRENTLY` (outside a transaction).
 */
export async function missingIndexStatements(db: Queryable, table: OutboxTable): Promise<string[]> {
  const names = OUTBOX_INDEXES.map((index) => indexName(table.bare, index.suffix));
  const { rows } = await db.query<{ name: string }>(
    `SELECT n.name FROM unnest($2::text[]) WITH ORDINALITY AS n(name, i)
      WHERE NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                         WHERE x.indrelid = to_regclass($1) AND c.relname = n.name)
      ORDER BY n.i`,
    [table.sql, names],
  );
  const missing = new Set(rows.map((row) => row.name));
  return OUTBOX_INDEXES.filter((index) => missing.has(indexName(table.bare, index.suffix))).map((index) => createIndex(table, index, true));
}

/** The columns every statement here reads or writes: what makes a table an outbox. */
const OUTBOX_COLUMNS: readonly string[] = [
  'id',
  'topic',
  'event_type',
  'payload',
  'tenant',
  'entity',
  'table_name',
  'operation',
  'created_at',
  'processed_at',
  'dead_reason',
];

/** Whether the table exists (the connecting role's search path resolves an unqualified name). */
export async function tableExists(db: Queryable, table: OutboxTable): Promise<boolean> {
  const { rows } = await db.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [table.sql]);
  return rows[0]?.found != null;
}

/** Of `OUTBOX_COLUMNS`, those the existing table lacks, in that order. */
export async function missingColumns(db: Queryable, table: OutboxTable): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.name FROM unnest($2::text[]) WITH ORDINALITY AS c(name, n)
      WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                         WHERE a.attrelid = to_regclass($1) AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped)
      ORDER BY c.n`,
    [table.sql, OUTBOX_COLUMNS],
  );
  return rows.map((row) => row.name);
}

/**
 * The types the statements here need of the columns they compare or write (the others are read
 * and validated row by row): ids compared with `bigint[]`, timestamps set to `now()` and aged, the
 * dead reason written (up to ~70 characters), the payload parsed as JSON. A table with another
 * type (a uuid id, a varchar(20) reason) would be routed and then fail its mark at every pass.
 */
const COLUMN_TYPES: Readonly<Record<string, { readonly types: readonly string[]; readonly said: string }>> = {
  id: { types: ['smallint', 'integer', 'bigint'], said: 'an integer (bigserial)' },
  payload: { types: ['json', 'jsonb'], said: 'json or jsonb' },
  created_at: { types: ['timestamp with time zone', 'timestamp without time zone'], said: 'a timestamp' },
  processed_at: { types: ['timestamp with time zone', 'timestamp without time zone'], said: 'a timestamp' },
  dead_reason: { types: ['text', 'character varying'], said: 'text (or a varchar of 100 characters or more)' },
};
/** The shortest varchar a dead reason fits in. */
const MIN_REASON_LENGTH = 100;

/** Of the existing table's columns, those whose type the outbox's statements cannot use: `column: what it is, what it must be`. */
export async function mistypedColumns(db: Queryable, table: OutboxTable): Promise<string[]> {
  const { rows } = await db.query<{ name: string; type: string; length: number }>(
    `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type,
            CASE WHEN a.atttypmod > 4 THEN a.atttypmod - 4 ELSE -1 END AS length
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [table.sql, Object.keys(COLUMN_TYPES)],
  );
  return rows.flatMap(({ name, type, length }) => {
    const wanted = COLUMN_TYPES[name];
    if (!wanted) return [];
    const fits = wanted.types.includes(type) && !(type === 'character varying' && length !== -1 && length < MIN_REASON_LENGTH);
    return fits ? [] : [`${name} is ${type}${length !== -1 && type === 'character varying' ? `(${length})` : ''}, not ${wanted.said}`];
  });
}

/**
 * Of `privileges` (SELECT, UPDATE, DELETE, …), those the connecting role lacks on the table. Asked
 * one at a time: `has_table_privilege` with a list says whether *any* of them is held.
 */
export async function missingPrivileges(db: Queryable, table: OutboxTable, privileges: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ privilege: string }>(
    `SELECT p.privilege FROM unnest($2::text[]) WITH ORDINALITY AS p(privilege, n)
      WHERE NOT has_table_privilege(to_regclass($1), p.privilege) ORDER BY p.n`,
    [table.sql, privileges],
  );
  return rows.map((row) => row.privilege);
}

/** Longest identifier Postgres keeps (NAMEDATALEN - 1), in bytes; the names here are ASCII. */
const MAX_IDENTIFIER = 63;

/**
 * `<bare>_<suffix>`, or for a name too long for that, its first characters, a hash of the whole
 * and the suffix. Postgres truncates a longer identifier to 63 bytes: `_pending_idx` and
 * `_processed_idx` would truncate to one name (or, at 63 characters, to the table's), and
 * `CREATE INDEX IF NOT EXISTS` would then skip the index with a mere NOTICE. Index names are per
 * schema, so the bare table name is enough to keep two outboxes apart.
 */
export function indexName(bare: string, suffix: string): string {
  const plain = `${bare}_${suffix}`;
  if (plain.length <= MAX_IDENTIFIER) return plain;
  const hash = createHash('sha256').update(bare).digest('hex').slice(0, 8);
  return `${bare.slice(0, MAX_IDENTIFIER - suffix.length - hash.length - 2)}_${hash}_${suffix}`;
}

/** The partition a row belongs to: one entity is always in one partition (rows without one spread by id). */
// The cast comes before abs(): abs() of int4's minimum overflows.
const partitionOf = `mod(abs(hashtext(coalesce(o.entity, o.id::text))::bigint), $2::int)`;

/**
 * `created_at` in epoch milliseconds (truncated), as text; NULL when it is NULL or not finite. The
 * WAL mode's decoding gives the same figure (`outbox-row.ts`, `createdMillis`), and event ids
 * derive from it: so it depends on neither the session's TimeZone nor its DateStyle (`extract`
 * counts a timestamp without time zone from 1970-01-01 on its own wall clock, as the decoding
 * reads it as UTC), and is exact on every version (`extract` returns a float8 before Postgres 14:
 * whole seconds, and the microseconds of the second apart; no offset has a fraction of a second).
 */
export const CREATED_MS = `CASE WHEN isfinite(o.created_at) THEN (extract(epoch FROM date_trunc('second', o.created_at))::bigint * 1000
            + (extract(microseconds FROM o.created_at)::bigint % 1000000) / 1000)::text END AS created_ms`;

/**
 * Takes the transaction-scoped advisory locks of the `partitions` it can without waiting, and
 * returns those (another poller holding one means it is being handled: skipped). Run inside the
 * transaction that claims the batch; COMMIT releases them.
 */
export async function tryLockPartitions(db: Queryable, outboxKey: number, partitions: readonly number[]): Promise<number[]> {
  const result = await db.query<{ partition: number }>(
    'SELECT p AS partition FROM unnest($2::int[]) AS p WHERE pg_try_advisory_xact_lock($1::int, p)',
    [outboxKey, partitions],
  );
  return result.rows.map((row) => row.partition);
}

/** A claimed row, with the partition it belongs to. */
export interface ClaimedRow extends OutboxRow {
  readonly partition: number;
}

/**
 * The oldest pending rows of the given partitions (of `count`), locked (FOR UPDATE, no SKIP
 * LOCKED: the advisory locks already make this poller their only reader, and skipping would
 * reorder an entity).
 */
export async function claimBatch(
  db: Queryable,
  table: OutboxTable,
  partitions: { readonly indexes: readonly number[]; readonly count: number },
  limit: number,
  maxPayloadBytes: number,
): Promise<ClaimedRow[]> {
  const result = await db.query<ClaimedRow>(
    // ORDER BY the column, qualified: a bare `id` would name the output `id::text` and sort as text ('10' < '9').
    `SELECT o.id::text AS id, ${CREATED_MS}, o.topic, o.event_type, ${PAYLOAD_COLUMNS}, o.tenant, o.entity, o.table_name, o.operation,
            ${partitionOf}::int AS partition
       FROM ${table.sql} AS o ${PAYLOAD_SIZE('$4')}
      WHERE o.processed_at IS NULL AND ${partitionOf} = ANY($1::int[])
      ORDER BY o.id
      LIMIT $3::int
      FOR UPDATE OF o`,
    [partitions.indexes, partitions.count, limit, unreadPayloadBytes(maxPayloadBytes)],
  );
  return readSetAside(db, table, result.rows, maxPayloadBytes);
}

/**
 * A batch reads a payload only when its text is within a few times the largest routed (a batch of
 * 4 MB payloads took a worker's heap from 14 to 164 MB); the margin keeps `json` columns written
 * with whitespace, and jsonb's own spacing. A payload over it is not judged by that text — jsonb
 * prints a number in full: 1,000 × `1e-300` is 7 KB of JSON and 304 KB of jsonb text — but read on
 * its own (`readSetAside`), unless its text is over the hard cap: `PAYLOAD_CAP_FACTOR` times the
 * limit (4 MB at the default 64 KB), above which the row is dead as over the limit without being
 * read. JSON that JavaScript writes is never more than ~47 times longer as jsonb text (`5e-324,`
 * prints as 326 characters and `, `), so every payload the SDK accepts is read and routed.
 */
const UNREAD_PAYLOAD_FACTOR = 4;
const PAYLOAD_CAP_FACTOR = 64;
export const PAYLOAD_SIZE = (param: string) => `CROSS JOIN LATERAL (SELECT octet_length(o.payload::text) > ${param}::int AS over) AS size`;
export const PAYLOAD_COLUMNS = 'CASE WHEN size.over THEN NULL ELSE o.payload END AS payload, size.over AS oversized';

export function unreadPayloadBytes(maxPayloadBytes: number, factor = UNREAD_PAYLOAD_FACTOR): number {
  return Math.min(2 ** 31 - 1, maxPayloadBytes * factor);
}

/**
 * `rows` (of a batch, in its order) with each read without its payload (`oversized`) read again on
 * its own, in the batch's transaction (locked or in its snapshot: the same row), and judged by its
 * JSON at once: a payload that cannot be routed is let go (`payload_fault`), so the batch holds at
 * most one payload over the batch's margin. Over the hard cap, the row stays `oversized` (dead).
 */
export async function readSetAside<Row extends OutboxRow>(db: Queryable, table: OutboxTable, rows: readonly Row[], maxPayloadBytes: number): Promise<Row[]> {
  const read: Row[] = [];
  for (const row of rows) {
    if (row.oversized !== true) {
      read.push(row);
      continue;
    }
    const alone = await db.query<{ payload: unknown; oversized: boolean }>(
      `SELECT ${PAYLOAD_COLUMNS} FROM ${table.sql} AS o ${PAYLOAD_SIZE('$2')} WHERE o.id = $1::bigint`,
      [row.id, unreadPayloadBytes(maxPayloadBytes, PAYLOAD_CAP_FACTOR)],
    );
    const loaded = alone.rows[0];
    if (loaded?.oversized !== false) {
      read.push(row);
      continue;
    }
    const fault = payloadFault(loaded.payload, maxPayloadBytes);
    read.push(fault === undefined ? { ...row, payload: loaded.payload, oversized: false } : { ...row, oversized: false, payload_fault: fault });
  }
  return read;
}

export async function markRouted(db: Queryable, table: OutboxTable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(`UPDATE ${table.sql} SET processed_at = now() WHERE id = ANY($1::bigint[])`, [ids]);
}

export async function markDead(db: Queryable, table: OutboxTable, id: string, reason: string): Promise<void> {
  await db.query(`UPDATE ${table.sql} SET processed_at = now(), dead_reason = $2 WHERE id = $1::bigint`, [id, reason]);
}

/**
 * Longest a retention sweep goes on taking batches, in ms (as the webhook log's pruning): a sweep
 * runs between a poller's passes, so routing waits for it, and so does `stop()`. A backlog of
 * processed rows larger than a sweep deletes is left to the next one.
 */
export const RETENTION_SWEEP_BUDGET_MS = 1_000;

export interface DeleteProcessedOptions {
  /** Rows deleted by one statement. */
  readonly batchSize: number;
  /** No batch starts after the sweep has run this long, in ms. @default RETENTION_SWEEP_BUDGET_MS */
  readonly budgetMs?: number;
  /** Aborted (the poller stopping): no batch starts after the one under way. */
  readonly signal?: AbortSignal | undefined;
  /** @default performance.now */
  readonly now?: () => number;
}

/**
 * Deletes rows processed (routed or set aside as dead) before `olderThanMs` ago, `batchSize` at a
 * time so no sweep holds many row locks or one long transaction, until a batch comes back short,
 * the budget is spent or the signal aborted. Dead rows stay readable for the same retention period,
 * then go too, so the table cannot grow without bound. Returns how many rows were deleted, and
 * whether older ones may be left (the sweep stopped before a short batch); pending rows
 * (processed_at null) are never touched.
 */
export async function deleteProcessed(
  db: Queryable,
  table: OutboxTable,
  olderThanMs: number,
  options: DeleteProcessedOptions,
): Promise<{ deleted: number; more: boolean }> {
  const now = options.now ?? (() => performance.now());
  const budgetMs = options.budgetMs ?? RETENTION_SWEEP_BUDGET_MS;
  const started = now();
  let deleted = 0;
  for (;;) {
    const result = await db.query(
      `DELETE FROM ${table.sql} WHERE id IN (
         SELECT id FROM ${table.sql}
          WHERE processed_at < now() - $1::double precision * interval '1 millisecond'
          LIMIT $2::int)`,
      [olderThanMs, options.batchSize],
    );
    const count = result.rowCount ?? 0;
    deleted += count;
    if (count < options.batchSize) return { deleted, more: false };
    if (now() - started >= budgetMs || options.signal?.aborted === true) return { deleted, more: true };
  }
}

export interface OutboxCounts {
  readonly pending: number;
  /** Age of the oldest pending row, in seconds; null when none is pending. */
  readonly oldestPendingSeconds: number | null;
  readonly dead: number;
}

export async function outboxCounts(db: Queryable, table: OutboxTable): Promise<OutboxCounts> {
  const result = await db.query<{ pending: string; oldest: number | null; dead: string }>(
    `SELECT (SELECT count(*) FROM ${table.sql} WHERE processed_at IS NULL) AS pending,
            (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM ${table.sql} WHERE processed_at IS NULL) AS oldest,
            (SELECT count(*) FROM ${table.sql} WHERE dead_reason IS NOT NULL) AS dead`,
  );
  const row = result.rows[0]!;
  return { pending: Number(row.pending), oldestPendingSeconds: row.oldest === null ? null : Number(row.oldest), dead: Number(row.dead) };
}

// ——— WAL mode: the reader routes inserts from the WAL; these statements catch up and clean up. ———

/** The table's schema and name as Postgres resolves them (what the WAL names it by); undefined when it does not exist. */
export async function resolveTable(db: Queryable, table: OutboxTable): Promise<{ schema: string; name: string } | undefined> {
  const result = await db.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
    [table.sql],
  );
  return result.rows[0];
}
