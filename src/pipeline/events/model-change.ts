/**
 * Model change events (source `database`): one per mapped row change, on the model's stream
 * `{module}.{model}` that `subscription changes` reads (seed 004). The same row change also goes
 * to the mapping's own topic with the mapping's payload (a plain JSON object).
 *
 * Envelope: `metadata.table` is the source table (`schema.name`), `metadata.operation` the row
 * operation (`insert | update | delete`), `entity` the table and primary key, `id` deterministic
 * (source, LSN, mapping) so a redelivery has the same id. Payload: `{ operation, model, id,
 * record, lastUpdatedAt }` — `operation` as the model sees it (a soft delete is DELETED though
 * the row was updated), `record` the full row after the change (for a delete, what the table
 * sends: its key at least), `lastUpdatedAt` the commit time in the source database (ISO 8601).
 *
 * A TRUNCATE of a mapped table ends the model stream's history (`cdc/model-truncates.ts`) and
 * leaves one marker as the first event of the new one: type `database.truncate`, payload
 * `{ operation: 'TRUNCATED', model, tables, lastUpdatedAt }`, no entity and no WAL transaction,
 * so `changes` never shows it (an `events` subscriber of the model stream, or a webhook, does).
 */
import type { RawEventInput, RealtimeEvent } from './envelope.ts';
import { eventShapeError } from './event-shape-error.ts';
import { isJsonObject, type JsonObject } from './json.ts';

export type ModelOperation = 'CREATED' | 'UPDATED' | 'DELETED';

// A type alias, not an interface: it must be assignable to the envelope's JSON-object payload.
export type ModelChangePayload = {
  readonly operation: ModelOperation;
  /** `{module}.{model}`'s model part. */
  readonly model: string;
  /** The entity key (primary key values, joined). */
  readonly id: string;
  readonly record: JsonObject | null;
  /** Commit time in the source database, ISO 8601. */
  readonly lastUpdatedAt: string;
};

/** What the CDC reader knows of a mapped row change, for its model stream. */
export type ModelChangeInput = Omit<RawEventInput, 'source' | 'payload'> & { readonly payload: ModelChangePayload };

/** A model change as the router takes it. */
export function modelChange(input: ModelChangeInput): RawEventInput {
  return { ...input, source: 'database' };
}

const OPERATIONS: ReadonlySet<unknown> = new Set<ModelOperation>(['CREATED', 'UPDATED', 'DELETED']);

/** The typed view of a model change; throws an internal EVENT_SHAPE error for anything else. */
export function readModelChange(event: RealtimeEvent): ModelChangePayload {
  if (event.source !== 'database') throw eventShapeError('model', event, `not a database event (${event.source})`);
  const { operation, model, id, record, lastUpdatedAt } = event.payload;
  if (!OPERATIONS.has(operation)) throw eventShapeError('model', event, `unknown operation ${JSON.stringify(operation)}`);
  if (typeof model !== 'string' || typeof id !== 'string') throw eventShapeError('model', event, 'model and id must be strings');
  if (record !== null && !isJsonObject(record)) throw eventShapeError('model', event, 'record must be an object or null');
  if (typeof lastUpdatedAt !== 'string' || Number.isNaN(Date.parse(lastUpdatedAt))) {
    throw eventShapeError('model', event, 'lastUpdatedAt must be an ISO 8601 time');
  }
  return event.payload as unknown as ModelChangePayload;
}

/** The marker a TRUNCATE leaves on a model stream it ended (see the file's comment). */
export type ModelTruncatedPayload = {
  readonly operation: 'TRUNCATED';
  readonly model: string;
  /** The truncated tables (`schema.name`) mapped to this model. */
  readonly tables: readonly string[];
  /** Commit time of the TRUNCATE in the source database, ISO 8601. */
  readonly lastUpdatedAt: string;
};

const MODEL_TRUNCATED_TYPE = 'database.truncate';

/** The marker as the router takes it: no entity, no transaction (so no `changes` subscriber takes it for a row change). */
export function modelTruncated(input: {
  readonly id: string;
  readonly scope: RawEventInput['scope'];
  readonly topic: string;
  readonly table: string;
  readonly payload: ModelTruncatedPayload;
}): RawEventInput {
  return { id: input.id, scope: input.scope, topic: input.topic, table: input.table, source: 'database', type: MODEL_TRUNCATED_TYPE, payload: input.payload };
}
