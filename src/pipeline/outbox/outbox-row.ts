/**
 * One outbox row → its event, or the reason it can never be one. The poller and the WAL reader
 * both go through here, so the two modes turn the same row into the same event (same id, scope,
 * entity) and set the same rows aside for the same reasons.
 */
import type { EventOperation, RawEventInput } from '../events/envelope.ts';
import { isJsonObject } from '../events/json.ts';
import { outboxEvent } from '../events/outbox-event.ts';
import { isDocumentTopic, isSystemTopic } from '../events/system-topics.ts';
import { assertName, hasControlCharacter, MAX_ENTITY_BYTES, MAX_TENANT_LENGTH } from '../names.ts';

/** A row as read from the table or decoded from the WAL; everything that is validated is untyped. */
export interface OutboxRow {
  /** The bigserial id, as text. */
  readonly id: string;
  /**
   * `created_at` in epoch milliseconds, as text; null when it is NULL or not finite. Event ids
   * derive from it (`outbox-event.ts`), so both modes compute it alike: from the table
   * (`outbox-sql.ts`, `CREATED_MS`) and from the WAL's decoded image (`createdMillis`). Absent
   * is null (a row made up by a test or a benchmark).
   */
  readonly created_ms?: string | null;
  readonly topic: unknown;
  readonly event_type: unknown;
  readonly payload: unknown;
  readonly tenant: unknown;
  readonly entity: unknown;
  readonly table_name: unknown;
  readonly operation: unknown;
  /**
   * Read from the table without its payload: once through `readSetAside` (`outbox-sql.ts`), its
   * text is over the hard cap, so over the limit.
   */
  readonly oversized?: boolean | null;
  /** Why the payload cannot be routed, judged when it was read on its own and then let go (`readSetAside`). */
  readonly payload_fault?: string;
}

/** What the rows of one outbox are checked against and scoped to. */
export interface OutboxRules {
  /** The outbox's stable identity: event ids derive from it and the row id. */
  readonly outboxId: string;
  /** The source's application and environment; the tenant comes from each row. */
  readonly scope: { readonly app: string; readonly env: string };
  /** Largest payload routed, in bytes of its JSON text. */
  readonly maxPayloadBytes: number;
  /** Rows without a tenant are set aside. */
  readonly requireTenant: boolean;
}

const OPERATIONS: ReadonlySet<string> = new Set<EventOperation>(['insert', 'update', 'delete']);

/**
 * Deepest nesting of objects and arrays routed, the payload itself level 1: what `publish` accepts
 * (its `$payload` variable, under the edge's MAX_VARIABLE_DEPTH). jsonb holds far deeper values in
 * a few KB, and JSON.stringify — here, in the log, a webhook, the socket — throws a RangeError on
 * them, at a depth that depends on the stack it runs on: every reader has to be able to send it.
 */
export const MAX_PAYLOAD_DEPTH = 100;

/** The reason given for a row whose conversion threw (see `outboxRowOutcome`). */
const UNEXPECTED_ROW_REASON = 'row could not be made an event';

/**
 * The row's event, or why the row can never be delivered: a stable, short reason (it goes into
 * `dead_reason` and the dead-row metric's label).
 */
export function outboxRowEvent(row: OutboxRow, rules: OutboxRules): RawEventInput | string {
  const { payload, operation, tenant, entity, table_name: table } = row;
  if (row.oversized === true) return `payload over ${rules.maxPayloadBytes} bytes`;
  if (row.payload_fault !== undefined) return row.payload_fault;
  const fault = payloadFault(payload, rules.maxPayloadBytes);
  if (fault !== undefined || !isJsonObject(payload)) return fault ?? 'payload is not a JSON object';
  if (typeof row.topic !== 'string' || !isValidName('topic', row.topic)) return 'invalid topic name';
  // As `publish` refuses them: subscribers and webhook endpoints trust what arrives on Tributary's
  // own topics (an env-wide endpoint relaying system.alerts to a pager), so no row may forge one.
  if (isSystemTopic(row.topic)) return "topic is one of Tributary's own";
  if (isDocumentTopic(row.topic)) return 'topic is a sync documents topic';
  const type = row.event_type;
  // The name rule of `publish`'s type (1–200 characters of letters, digits and _ . : / -).
  if (typeof type !== 'string' || !isValidName('type', type)) return 'invalid event_type';
  if (tenant !== null && typeof tenant !== 'string') return 'invalid tenant';
  if (tenant === '') return 'tenant is empty';
  if (tenant === null && rules.requireTenant) return 'tenant missing';
  if (operation !== null && (typeof operation !== 'string' || !OPERATIONS.has(operation))) return 'invalid operation';
  if ((entity !== null && typeof entity !== 'string') || (table !== null && typeof table !== 'string')) return 'invalid entity or table_name';
  // Both go into indexed columns (a webhook delivery's lane): one too long for the index would fail
  // its batch's routing on every attempt, and hold up the whole outbox behind it.
  if (tenant !== null && tenant.length > MAX_TENANT_LENGTH) return `tenant over ${MAX_TENANT_LENGTH} characters`;
  if (entity !== null && Buffer.byteLength(entity) > MAX_ENTITY_BYTES) return `entity over ${MAX_ENTITY_BYTES} bytes`;
  // As `publish` refuses them in an entity, and a token's tenant claim cannot hold one: routed, such
  // a row would land in a scope no token has, or an ordering lane no publish shares.
  if (tenant !== null && hasControlCharacter(tenant)) return 'tenant holds a control character';
  if (entity !== null && hasControlCharacter(entity)) return 'entity holds a control character';
  return outboxEvent({
    outbox: rules.outboxId,
    rowId: row.id,
    created: row.created_ms ?? null,
    topic: row.topic,
    type,
    payload,
    // No tenant: application-wide, as a principal without a tenant is scoped (a back-end token sees it).
    scope: { ...rules.scope, tenant: tenant ?? undefined },
    entity: entity ?? undefined,
    table: table ?? undefined,
    operation: (operation as EventOperation | null) ?? undefined,
  });
}

/**
 * Why `payload` can never be routed — not a JSON object, nested too deeply, over
 * `maxPayloadBytes` of compact JSON (the size the SDK's `enqueueOutboxEvent` checks) — or
 * undefined when it can be.
 */
export function payloadFault(payload: unknown, maxPayloadBytes: number): string | undefined {
  if (!isJsonObject(payload)) return 'payload is not a JSON object';
  // Before the size: measuring it is the JSON.stringify that throws on such a value.
  if (nestsDeeperThan(payload, MAX_PAYLOAD_DEPTH)) return `payload nests over ${MAX_PAYLOAD_DEPTH} levels deep`;
  if (Buffer.byteLength(JSON.stringify(payload)) > maxPayloadBytes) return `payload over ${maxPayloadBytes} bytes`;
  return undefined;
}

/**
 * `created_at` as the WAL's decoding gives it (`cdc/row-values.ts`: a timestamptz as its instant, a
 * timestamp without time zone as its wall clock read as UTC, both ISO 8601 to the millisecond,
 * whatever the session's TimeZone) in epoch milliseconds, as text: what `CREATED_MS` computes from
 * the table. Null for NULL, and for what is no instant (`infinity`, as Postgres prints it).
 */
export function createdMillis(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? String(ms) : null;
}

/**
 * `outboxRowEvent`, with a throw made the row's dead reason (`onError` logs it): rows are
 * converted inside the batch's transaction, or the WAL chunk's routing, and one row that throws
 * there would fail it at every attempt — the whole outbox held up behind one row.
 */
export function outboxRowOutcome(row: OutboxRow, rules: OutboxRules, onError: (error: unknown) => void): RawEventInput | string {
  try {
    return outboxRowEvent(row, rules);
  } catch (error) {
    onError(error);
    return UNEXPECTED_ROW_REASON;
  }
}

/**
 * Whether `value` (an object, level 1) holds objects or arrays more than `max` levels deep. An
 * explicit stack, not recursion: the depth is the row's; it stops at the first level too deep.
 */
function nestsDeeperThan(value: object, max: number): boolean {
  const stack: { readonly value: object; readonly depth: number }[] = [{ value, depth: 1 }];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (node.depth > max) return true;
    const children: unknown[] = Array.isArray(node.value) ? node.value : Object.values(node.value);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: node.depth + 1 });
    }
  }
  return false;
}

function isValidName(kind: 'topic' | 'type', name: string): boolean {
  try {
    assertName(kind, name);
    return true;
  } catch {
    return false;
  }
}
