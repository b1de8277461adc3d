import type { Queryable } from '../../db/database.ts';
import { InternalError } from '../../errors.ts';
import type { DocumentChangePayload, DocumentOperation } from '../events/document-change.ts';
import type { Scope } from '../scope.ts';
import { storedKey, type StoredKey } from './document-store.ts';
import type { DocumentKey } from './documents.ts';

/**
 * Marks of document changes saved but whose event is not known to be published: no acknowledged
 * change's event is lost silently. A change's mark is saved atomically with the change — in the
 * Postgres transaction (no cache), in the cache's flush statement (sync durability: the change is
 * saved when Postgres has it), in the cache's write script (async durability: Redis has it first,
 * `unpublished-redis.ts`) — and removed once its event is in the log. A mark still there after a
 * grace period (its writer died in between, or the log refused the event) is published again by a
 * sweep (`republisher.ts`), with the event's own id, so a consumer that got the first one sees the
 * same event twice at most (webhook deliveries are stored once per event id and endpoint). A
 * later change's publish first publishes its document's earlier marked events, so a document's
 * events stay in revision order.
 */

/** A document change's event as saved in its mark: all the router needs to place it (twice: see `document-events.ts`). */
export interface DocumentEvent {
  readonly id: string;
  readonly operation: DocumentOperation;
  readonly scope: Scope;
  readonly payload: DocumentChangePayload;
}

export interface UnpublishedMarks {
  /** The document's marked events below `revision`, in revision order. */
  earlier(key: DocumentKey, revision: number): Promise<DocumentEvent[]>;
  /** Removes the document's marks of these revisions (their events are in the log). */
  remove(key: DocumentKey, revisions: readonly number[]): Promise<void>;
  /**
   * Marked events past their grace period, at most `limit`, in revision order per document —
   * claimed for another grace period where the store can (Postgres), so that instances sweeping
   * at once do not all publish them.
   */
  due(limit: number): Promise<DocumentEvent[]>;
}

/** How a mark holds its event: JSON text (`tenant` null for none). */
export function encodeEvent(event: DocumentEvent): string {
  const { id, operation, scope, payload } = event;
  return JSON.stringify({ id, operation, scope: { app: scope.app, env: scope.env, tenant: scope.tenant ?? null }, payload });
}

/** The inverse of `encodeEvent`, from its text or (a json column) its value. */
export function decodeEvent(stored: unknown): DocumentEvent {
  const value = (typeof stored === 'string' ? JSON.parse(stored) : stored) as {
    id?: unknown;
    operation?: unknown;
    scope?: { app?: unknown; env?: unknown; tenant?: unknown };
    payload?: DocumentChangePayload;
  };
  const { id, operation, scope, payload } = value;
  if (typeof id !== 'string' || typeof operation !== 'string' || typeof scope?.app !== 'string' || typeof scope.env !== 'string' || !payload) {
    throw new InternalError('DOCUMENT_EVENT_MARK_INVALID', 'a document event marked unpublished cannot be read');
  }
  const tenant = typeof scope.tenant === 'string' ? scope.tenant : undefined;
  return { id, operation: operation as DocumentOperation, scope: { app: scope.app, env: scope.env, tenant }, payload };
}

/** The document an event is a change of. */
export function keyOfEvent(event: DocumentEvent): DocumentKey {
  return { scope: event.scope, service: event.payload.service, id: event.payload.documentId };
}

/** The grace period before a marked event is published again, unless configured otherwise: a publish takes milliseconds. */
export const DEFAULT_REPUBLISH_GRACE_MS = 5000;

const KEY_MATCH = 'app = $1 AND env = $2 AND tenant = $3 AND service = $4 AND id = $5';

function keyParams(key: DocumentKey | StoredKey): string[] {
  const { app, env, tenant, service, id } = 'scope' in key ? storedKey(key) : key;
  return [app, env, tenant, service, id];
}

/**
 * Marks `event` unpublished, in the transaction `tx` that saves its change; due after `graceMs`.
 * Answers whether an earlier event of the document is still marked.
 */
export async function markUnpublished(tx: Queryable, key: DocumentKey, event: DocumentEvent, graceMs: number): Promise<boolean> {
  const { rows } = await tx.query<{ earlier: boolean }>(
    `WITH mark AS (
       INSERT INTO sync_unpublished_events (app, env, tenant, service, id, revision, event, due_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8 * interval '1 millisecond') ON CONFLICT DO NOTHING)
     SELECT EXISTS (SELECT 1 FROM sync_unpublished_events WHERE ${KEY_MATCH} AND revision < $6) AS earlier`,
    [...keyParams(key), event.payload.revision, encodeEvent(event), graceMs],
  );
  return rows[0]?.earlier ?? false;
}

/** The marks in Postgres (migration 0033): the Postgres-only service's and, in sync durability, the cache's. */
export function createPostgresMarks(db: Queryable, graceMs: number): UnpublishedMarks {
  return {
    async earlier(key, revision) {
      const { rows } = await db.query<{ event: unknown }>(
        `SELECT event FROM sync_unpublished_events WHERE ${KEY_MATCH} AND revision < $6 ORDER BY revision`,
        [...keyParams(key), revision],
      );
      return rows.map((row) => decodeEvent(row.event));
    },

    async remove(key, revisions) {
      await db.query(`DELETE FROM sync_unpublished_events WHERE ${KEY_MATCH} AND revision = ANY($6::int[])`, [...keyParams(key), revisions]);
    },

    async due(limit) {
      // Claimed by moving them a grace period ahead: another instance's sweep skips them, and they
      // come due again if this one fails to publish them (or dies first).
      const { rows } = await db.query<{ event: unknown }>(
        `UPDATE sync_unpublished_events SET due_at = now() + $2 * interval '1 millisecond'
          WHERE (app, env, tenant, service, id, revision) IN (
            SELECT app, env, tenant, service, id, revision FROM sync_unpublished_events
             WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING event, app, env, tenant, service, id, revision`,
        [limit, graceMs],
      );
      return rows
        .map((row) => decodeEvent(row.event))
        .sort((a, b) => byDocument(a, b) || a.payload.revision - b.payload.revision);
    },
  };
}

/** An order that keeps each document's events together. */
function byDocument(a: DocumentEvent, b: DocumentEvent): number {
  const left = keyParams(keyOfEvent(a)).join('\u0000');
  const right = keyParams(keyOfEvent(b)).join('\u0000');
  return left < right ? -1 : left > right ? 1 : 0;
}
