/**
 * Writing to the outbox from a Node service: one parameterized INSERT on the caller's own client
 * or transaction, so the event commits (or rolls back) with the business write.
 *
 *   await client.query('BEGIN');
 *   await client.query('INSERT INTO orders (id, total) VALUES ($1, $2)', [id, total]);
 *   await enqueueOutboxEvent(client, { topic: 'orders', type: 'order.created', payload: { id, total }, entity: `order:${id}` });
 *   await client.query('COMMIT');
 *
 * The same INSERT without the helper:
 *   INSERT INTO event_outbox (topic, event_type, payload, tenant, entity, table_name, operation)
 *   VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
 *
 * The event is checked first (`outbox-rules.ts`): one Tributary would set aside as dead, or one
 * Postgres would refuse — which aborts the caller's transaction — throws an
 * `InvalidOutboxEventError` before anything is sent.
 *
 * Nothing here imports the server (the client ships on its own), so the table name's check is
 * repeated from `pipeline/outbox/outbox-sql.ts`, and the event's rules from its outbox-row.ts.
 */
import { DEFAULT_MAX_PAYLOAD_BYTES, validateOutboxEvent } from './outbox-rules.ts';

export { DEFAULT_MAX_PAYLOAD_BYTES, InvalidOutboxEventError, MAX_PAYLOAD_DEPTH, validateOutboxEvent } from './outbox-rules.ts';
export type { InvalidOutboxEventCode, OutboxEventField, OutboxEventFields } from './outbox-rules.ts';

/** Anything with pg's `query(text, values)`: a Client, a PoolClient, a Pool (no transaction then). */
export interface OutboxQueryable {
  query(text: string, values: unknown[]): Promise<unknown>;
}

export interface OutboxEventInput {
  /** The topic subscribers subscribe to. */
  readonly topic: string;
  /** The event's `type` (the row's `event_type`). */
  readonly type: string;
  /** A JSON object: the event's payload as subscribers receive it. */
  readonly payload: Readonly<Record<string, unknown>>;
  /** The tenant the event belongs to; omitted: application-wide. */
  readonly tenant?: string;
  /** The key whose events keep their insert order, e.g. `order:42`. */
  readonly entity?: string;
  /** The business table the event is about (`metadata.table`). */
  readonly table?: string;
  readonly operation?: 'insert' | 'update' | 'delete';
}

export interface EnqueueOptions {
  /** The outbox table, `name` or `schema.name`. @default 'event_outbox' */
  readonly table?: string;
  /**
   * The largest payload Tributary routes, in bytes of its JSON text: the server's
   * EVENT_MAX_PAYLOAD_BYTES. A larger one throws instead of being written and set aside as dead.
   * @default 65536
   */
  readonly maxPayloadBytes?: number;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

function quotedTable(name: string): string {
  const parts = name.split('.');
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new TypeError(`Invalid outbox table "${name}": use name or schema.name in lower-case letters, digits and _`);
  }
  return parts.map((part) => `"${part}"`).join('.');
}

/**
 * Inserts one outbox row on `client` (inside the caller's transaction) and returns its id. An
 * event Tributary would refuse throws an `InvalidOutboxEventError` first: nothing is sent, the
 * transaction goes on.
 */
export async function enqueueOutboxEvent(
  client: OutboxQueryable,
  event: OutboxEventInput,
  options: EnqueueOptions = {},
): Promise<string> {
  const table = quotedTable(options.table ?? 'event_outbox');
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Number.isSafeInteger(maxPayloadBytes) || maxPayloadBytes < 1) {
    throw new TypeError(`Invalid maxPayloadBytes ${String(maxPayloadBytes)}: use the server's EVENT_MAX_PAYLOAD_BYTES, a positive integer`);
  }
  const payload = validateOutboxEvent(event, maxPayloadBytes);
  const result = (await client.query(
    `INSERT INTO ${table} (topic, event_type, payload, tenant, entity, table_name, operation)
     VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) RETURNING id::text AS id`,
    [
      event.topic,
      event.type,
      payload,
      event.tenant ?? null,
      event.entity ?? null,
      event.table ?? null,
      event.operation ?? null,
    ],
  )) as { rows?: readonly { id?: unknown }[] };
  const id = result.rows?.[0]?.id;
  if (typeof id !== 'string') throw new Error('The outbox INSERT returned no id');
  return id;
}
