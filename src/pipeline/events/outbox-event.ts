/**
 * Outbox events (source `database`): one per row an application inserted into its outbox table
 * in the same transaction as its business write. They are database events like CDC's — a
 * subscriber cannot tell, and need not — so the seed's `table_name` and `operation` columns fill
 * `metadata.table` and `metadata.operation`, the row's `tenant` the scope's tenant, its `entity`
 * the ordering key.
 *
 * The id is derived from the outbox (its source id), the row's id and its `created_at`: a row routed
 * again — after a crash between routing and marking, by the other mode after a mode switch — keeps
 * its id, and subscribers de-duplicate on it. The row id alone is not the row: the table's ids
 * restart (`TRUNCATE … RESTART IDENTITY`, the table dropped and re-created, a point-in-time restore
 * in the same cluster), and a new row with an earlier row's id would get that row's event id and
 * be dropped downstream as a duplicate (the SDK, a webhook endpoint's unique event id). Its
 * creation time tells the two apart. The payload is the row's JSON object as the application
 * wrote it.
 */
import type { EventOperation, RawEventInput } from './envelope.ts';
import { stableEventId } from './event-id.ts';
import type { JsonObject } from './json.ts';
import type { Scope } from '../scope.ts';

export interface OutboxRowInput {
  /** The outbox's identity (its database and table), the same for every reader of it. */
  readonly outbox: string;
  /** The row's `id` (bigserial, as text). */
  readonly rowId: string;
  /** The row's `created_at` in epoch milliseconds, as text (`outbox-row.ts`, `createdMillis`); null or absent when it has none. */
  readonly created?: string | null;
  readonly topic: string;
  /** The row's `event_type`. */
  readonly type: string;
  readonly payload: JsonObject;
  /** The source's app and env, the row's tenant. */
  readonly scope: Scope;
  /** The row's `entity`: its events keep the order they were inserted in. */
  readonly entity: string | undefined;
  /** The row's `table_name`, when the application names one. */
  readonly table: string | undefined;
  readonly operation: EventOperation | undefined;
}

/**
 * The id of the event of row `rowId` of `outbox`, created at `created` (epoch milliseconds, text).
 * A row without a creation time keeps the id earlier versions gave every row.
 */
export function outboxEventId(outbox: string, rowId: string, created: string | null): string {
  return created === null ? stableEventId('outbox', outbox, rowId) : stableEventId('outbox', outbox, rowId, created);
}

export function outboxEvent(row: OutboxRowInput): RawEventInput {
  return {
    id: outboxEventId(row.outbox, row.rowId, row.created ?? null),
    source: 'database',
    topic: row.topic,
    type: row.type,
    payload: row.payload,
    scope: row.scope,
    ...(row.entity !== undefined && { entity: row.entity }),
    ...(row.table !== undefined && { table: row.table }),
    ...(row.operation !== undefined && { operation: row.operation }),
  };
}
