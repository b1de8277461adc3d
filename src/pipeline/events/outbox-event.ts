/**
 * Outbox events (source `database`): one per row an application inserted into its outbox table
 * in the same transaction as its business write. They are database events like CDC's — a
 * subscriber cannot tell, and need not — so the seed's `table_name` and `operation` columns fill
 * `metadata.table` and `metadata.operation`, the row's `tenant` the scope's tenant, its `entity`
 * the ordering key.
 *
 * The id is derived from the outbox (its source id) and the row's id: a row routed again after a
 * crash between routing and marking keeps its id, and subscribers de-duplicate on it. The payload
 * is the row's JSON object as the application wrote it.
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

export function outboxEvent(row: OutboxRowInput): RawEventInput {
  return {
    id: stableEventId('outbox', row.outbox, row.rowId),
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
