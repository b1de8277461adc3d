import type { Queryable } from '../../db/database.ts';
import type { Scope } from '../scope.ts';
import { sameJson } from './document-diff.ts';
import type { DocumentState } from './document-writes.ts';
import type { DocumentKey, JsonObject } from './documents.ts';

/**
 * Every SQL statement on `sync_documents` (migrations 0001 and 0002), one function each, taking
 * the database or a transaction: the Postgres-only service, the cache's loader and its flusher
 * share them, so a column is added in one place.
 */

/** A `sync_documents` row as selected (a type alias: the database interface wants an index signature). */
export type DocumentRow = {
  id: string;
  revision: number;
  data: JsonObject;
  deleted: boolean;
  created_at: Date;
  updated_at: Date;
  /** The highest revision a cache may acknowledge before Postgres has it (0 without a cache). */
  ceiling: number;
  /** The cache lease the ceiling was granted under (`leaseId`); null when written without a cache. */
  cache_epoch: string | null;
};

/** A document key as the flusher reads it back from the cache: flat, tenant '' for none. */
export interface StoredKey {
  readonly app: string;
  readonly env: string;
  readonly tenant: string;
  readonly service: string;
  readonly id: string;
}

const COLUMNS = 'id, revision, data, deleted, created_at, updated_at, ceiling, cache_epoch';
const KEY_MATCH = 'app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5';
const KEY_COLUMNS = 'app, env, tenant, service, id';

export function storedKey(key: DocumentKey): StoredKey {
  return { app: key.scope.app, env: key.scope.env, tenant: key.scope.tenant ?? '', service: key.service, id: key.id };
}

function keyParams(key: DocumentKey | StoredKey): string[] {
  const { app, env, tenant, service, id } = 'scope' in key ? storedKey(key) : key;
  return [app, env, tenant, service, id];
}

/** The document's row, tombstones and placeholders included. */
export async function selectDocument(db: Queryable, key: DocumentKey | StoredKey): Promise<DocumentRow | undefined> {
  const { rows } = await db.query<DocumentRow>(`SELECT ${COLUMNS} FROM sync_documents WHERE ${KEY_MATCH}`, keyParams(key));
  return rows[0];
}

/** The document's row, locked until the transaction `tx` ends. */
export async function lockDocument(tx: Queryable, key: DocumentKey): Promise<DocumentRow | undefined> {
  const { rows } = await tx.query<DocumentRow>(`SELECT ${COLUMNS} FROM sync_documents WHERE ${KEY_MATCH} FOR UPDATE`, keyParams(key));
  return rows[0];
}

/** The statement listing live documents, selecting `columns`. */
const listLive = (columns: string) => `SELECT ${columns} FROM sync_documents
      WHERE app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND NOT deleted AND id COLLATE "C" > $5
      ORDER BY id COLLATE "C" LIMIT $6`;

/**
 * The statement of `listLiveDocuments` (parameters: app, env, tenant, service, after, limit),
 * exported so a test can check its plan. Ids in byte order (`COLLATE "C"`), whatever the
 * database's default collation: the order the cache's ids are merged in. Migration 0029's partial
 * index `sync_documents_live_by_id` serves exactly this filter and order — change one with the other.
 */
export const LIST_LIVE_DOCUMENTS_SQL = listLive(COLUMNS);

/**
 * The same without the documents' data (`{}` in its place): a large document's data is stored
 * apart from its row (TOAST), and is then not read at all.
 */
export const LIST_LIVE_DOCUMENT_HEADS_SQL = listLive(COLUMNS.replace(/\bdata\b/, `'{}'::jsonb AS data`));

/**
 * Live documents of a service, by id in byte order, after `after`: up to `limit` rows; without
 * `withData`, their `data` is `{}` (not read).
 */
export async function listLiveDocuments(
  db: Queryable,
  scope: Scope,
  service: string,
  after: string,
  limit: number,
  withData = true,
): Promise<DocumentRow[]> {
  const sql = withData ? LIST_LIVE_DOCUMENTS_SQL : LIST_LIVE_DOCUMENT_HEADS_SQL;
  const { rows } = await db.query<DocumentRow>(sql, [scope.app, scope.env, scope.tenant ?? '', service, after, limit]);
  return rows;
}

/** What a cache asks of Postgres with a document: a ceiling, under its lease (`leaseId`). */
export interface CeilingGrant {
  readonly ceiling: number;
  readonly lease: string;
}

/**
 * Stores `state` unless the row already has this revision or a later one (flushes of several
 * instances may race; the row only moves forward). With `basedOn` — the revision Postgres held
 * when the change was decided on (sync durability) — the write is a compare-and-set: it is also
 * refused when the row has moved past `basedOn`, i.e. when another change of the document reached
 * Postgres first (instances whose cache lost its data decide from what Postgres has: two of them
 * may decide a change of the same revision). The ceiling only goes up; without a grant it is at
 * least the revision. With `mark` — the change's encoded event (`unpublished-events.ts`) — the same
 * statement marks the event unpublished (migration 0033), due after `graceMs`, if the row was
 * written and the event is of this revision. Answers the row's ceiling, or undefined when nothing
 * was written.
 */
export async function writeDocument(
  db: Queryable,
  key: DocumentKey | StoredKey,
  state: DocumentState,
  grant: CeilingGrant | undefined,
  basedOn?: number,
  mark?: { readonly event: string; readonly graceMs: number },
): Promise<number | undefined> {
  const { rows } = await db.query<{ ceiling: number }>(
    `WITH written AS (INSERT INTO sync_documents (${KEY_COLUMNS}, revision, data, deleted, created_at, updated_at, ceiling, cache_epoch)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (${KEY_COLUMNS}) DO UPDATE SET revision = excluded.revision, data = excluded.data,
       deleted = excluded.deleted, created_at = excluded.created_at, updated_at = excluded.updated_at,
       ceiling = GREATEST(sync_documents.ceiling, excluded.ceiling),
       cache_epoch = COALESCE(excluded.cache_epoch, sync_documents.cache_epoch)
     WHERE sync_documents.revision < excluded.revision AND sync_documents.revision <= COALESCE($13::int, sync_documents.revision)
     RETURNING ceiling),
     marked AS (INSERT INTO sync_unpublished_events (${KEY_COLUMNS}, revision, event, due_at)
       SELECT $1, $2, $3, $4, $5, $6, $14::json, now() + $15::int * interval '1 millisecond' FROM written
        WHERE $14::json IS NOT NULL AND ($14::json -> 'payload' ->> 'revision')::int = $6
       ON CONFLICT DO NOTHING)
     SELECT ceiling FROM written`,
    [
      ...keyParams(key),
      state.revision,
      JSON.stringify(state.data),
      state.deleted,
      state.createdAt,
      state.updatedAt,
      grant?.ceiling ?? state.revision,
      grant?.lease ?? null,
      basedOn ?? null,
      mark?.event ?? null,
      mark?.graceMs ?? 0,
    ],
  );
  return rows[0]?.ceiling;
}

/**
 * Grants a ceiling `headroom` revisions past the revision the row has — not past what the cache
 * holds, so that a cache whose flushes lag or fail cannot raise it without bound — and records
 * the lease (creating a placeholder row, revision 0 and deleted, for a document only the cache
 * has). The stored ceiling only goes up (it may keep an older, higher grant); answers the one
 * granted now.
 */
export async function raiseCeiling(db: Queryable, key: DocumentKey, headroom: number, lease: string): Promise<number> {
  const { rows } = await db.query<{ granted: number }>(
    `INSERT INTO sync_documents (${KEY_COLUMNS}, revision, data, deleted, ceiling, cache_epoch)
     VALUES ($1, $2, $3, $4, $5, 0, '{}', true, $6::int, $7)
     ON CONFLICT (${KEY_COLUMNS}) DO UPDATE
       SET ceiling = GREATEST(sync_documents.ceiling, sync_documents.revision + $6::int), cache_epoch = excluded.cache_epoch
     RETURNING revision + $6::int AS granted`,
    [...keyParams(key), headroom, lease],
  );
  return rows[0]!.granted;
}

/**
 * Gives back the ceilings granted under `lease`, except for the documents in `keep` (their
 * cache entries still hold changes Postgres lacks): the rows' ceilings come down to their
 * revisions. Answers how many rows changed.
 */
export async function releaseCeilings(db: Queryable, lease: string, keep: readonly StoredKey[]): Promise<number> {
  const column = (name: keyof StoredKey) => keep.map((key) => key[name]);
  const { rowCount } = await db.query(
    `UPDATE sync_documents SET ceiling = revision
      WHERE cache_epoch = $1 AND ceiling > revision
        AND (${KEY_COLUMNS}) NOT IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]))`,
    [lease, column('app'), column('env'), column('tenant'), column('service'), column('id')],
  );
  return rowCount;
}

/**
 * Whether the row is exactly this state of the document: the same revision, time and content (two
 * instances may decide changes of one revision within the same millisecond).
 */
export function rowHolds(row: DocumentRow, state: DocumentState): boolean {
  return (
    row.revision === state.revision &&
    row.updated_at.getTime() === state.updatedAt.getTime() &&
    row.deleted === state.deleted &&
    sameJson(row.data, state.data)
  );
}

export function stateOf(row: DocumentRow): DocumentState {
  return { revision: row.revision, data: row.data, deleted: row.deleted, createdAt: row.created_at, updatedAt: row.updated_at };
}
