/**
 * What Tributary refuses in an outbox row, checked in the service before its INSERT. An event
 * Postgres cannot store (a NUL character, half of a surrogate pair) would otherwise fail the
 * INSERT with a raw pg error — and abort the caller's whole transaction, its business write with
 * it; one Tributary cannot route would be written, and only set aside as dead when read.
 *
 * The server's rules, repeated here because the client ships on its own and imports none of its
 * code — keep them in step: src/pipeline/outbox/outbox-row.ts (`outboxRowEvent`, the order and
 * the dead reasons), src/pipeline/names.ts (the name rule, MAX_ENTITY_BYTES),
 * src/pipeline/events/system-topics.ts (reserved topics), src/auth/principal.ts
 * (MAX_TENANT_LENGTH), src/config-events.ts (EVENT_MAX_PAYLOAD_BYTES) and
 * src/resolvers/json-input.ts (control characters; what jsonb cannot hold).
 */

/** What is wrong, stable across versions; `field` says where. */
export type InvalidOutboxEventCode =
  /** `topic` or `type` breaks the name rule, or is not a string. */
  | 'INVALID_NAME'
  /** `topic` is one of Tributary's own or a sync documents' topic. */
  | 'RESERVED_TOPIC'
  /** `payload` is not a JSON object (an array, null, a string…), or `tenant`, `entity`, `table` not a string, or `operation` not one of its values. */
  | 'INVALID_VALUE'
  /** `payload` cannot be written as JSON at all (a cycle, a BigInt, a throwing `toJSON`). */
  | 'NOT_JSON'
  /** `payload` nests objects and arrays more than 100 levels deep. */
  | 'TOO_DEEP'
  /** `payload` over `maxPayloadBytes` of JSON, `tenant` over 200 characters, `entity` over 1,024 UTF-8 bytes. */
  | 'TOO_LARGE'
  /** `tenant` is the empty string (leave it out for an application-wide event). */
  | 'EMPTY'
  /** `tenant` or `entity` holds a control character (U+0000–U+001F, U+007F–U+009F). */
  | 'CONTROL_CHARACTER'
  /** A NUL character or half of a surrogate pair (a string cut inside an emoji) in a payload key or string, or in `table`. */
  | 'UNSTORABLE_TEXT';

export type OutboxEventField = 'topic' | 'type' | 'payload' | 'tenant' | 'entity' | 'table' | 'operation';

/**
 * An outbox event Tributary would refuse, refused before the INSERT: nothing was sent to the
 * database, so the caller's transaction goes on. A `TypeError`: the input is wrong, and the same
 * event fails again on every retry.
 */
export class InvalidOutboxEventError extends TypeError {
  readonly code: InvalidOutboxEventCode;
  readonly field: OutboxEventField;
  /** Inside the payload, a JSON Pointer to the key or value at fault (`/items/0/note`); undefined otherwise. */
  readonly path: string | undefined;

  constructor(field: OutboxEventField, code: InvalidOutboxEventCode, message: string, path?: string, cause?: unknown) {
    super(`Invalid outbox event: ${message}`, cause === undefined ? undefined : { cause });
    this.name = 'InvalidOutboxEventError';
    this.field = field;
    this.code = code;
    this.path = path;
  }
}

/** The server's default EVENT_MAX_PAYLOAD_BYTES (64 KiB): the largest payload routed, in bytes of its JSON text. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 65_536;
/** Deepest nesting of objects and arrays routed, the payload itself level 1 (outbox-row.ts MAX_PAYLOAD_DEPTH). */
export const MAX_PAYLOAD_DEPTH = 100;
const MAX_NAME_LENGTH = 200;
const MAX_TENANT_LENGTH = 200;
const MAX_ENTITY_BYTES = 1024;

/** Topics and event types: letters, digits and `_ . : / -`, starting with a letter or digit (names.ts). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/;
/** Tributary's own topics (system-topics.ts): by prefix, sync documents' included, and by name. */
const RESERVED_PREFIXES: readonly string[] = ['system.', 'gateway.', 'sync.'];
const RESERVED_TOPICS: ReadonlySet<string> = new Set(['webhooks.endpoints', 'webhooks.test', 'analytics.minutes']);
const OPERATIONS: ReadonlySet<unknown> = new Set(['insert', 'update', 'delete']);
const CONTROL_CHARACTER = /\p{Cc}/u;
/** Half of a surrogate pair. Not `String#isWellFormed`: the published build targets ES2023. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The event as the caller hands it: typed `unknown`, for JavaScript callers are checked too. */
export interface OutboxEventFields {
  readonly topic: unknown;
  readonly type: unknown;
  readonly payload: unknown;
  readonly tenant?: unknown;
  readonly entity?: unknown;
  readonly table?: unknown;
  readonly operation?: unknown;
}

/**
 * Throws an `InvalidOutboxEventError` for an event Tributary would refuse; returns the payload's
 * JSON text, as it is to be written. `maxPayloadBytes`: the server's EVENT_MAX_PAYLOAD_BYTES.
 */
export function validateOutboxEvent(event: OutboxEventFields, maxPayloadBytes: number = DEFAULT_MAX_PAYLOAD_BYTES): string {
  const { topic, type, tenant, entity, table, operation } = event;
  assertName('topic', topic);
  // As `publish` refuses them: subscribers and webhook endpoints trust what arrives on these.
  if (RESERVED_PREFIXES.some((prefix) => topic.startsWith(prefix)) || RESERVED_TOPICS.has(topic)) {
    throw new InvalidOutboxEventError('topic', 'RESERVED_TOPIC', `topic ${quoted(topic)} is Tributary's own (system.*, gateway.*, sync.*, webhooks.endpoints, webhooks.test, analytics.minutes)`);
  }
  assertName('type', type);
  if (tenant !== undefined && tenant !== null) {
    assertText('tenant', tenant);
    if (tenant === '') throw new InvalidOutboxEventError('tenant', 'EMPTY', 'tenant is empty: leave it out for an application-wide event');
    if (tenant.length > MAX_TENANT_LENGTH) throw new InvalidOutboxEventError('tenant', 'TOO_LARGE', `tenant is ${tenant.length} characters; the limit is ${MAX_TENANT_LENGTH}`);
  }
  if (entity !== undefined && entity !== null) {
    assertText('entity', entity);
    const bytes = Buffer.byteLength(entity);
    if (bytes > MAX_ENTITY_BYTES) throw new InvalidOutboxEventError('entity', 'TOO_LARGE', `entity is ${bytes} bytes of UTF-8; the limit is ${MAX_ENTITY_BYTES}`);
  }
  if (table !== undefined && table !== null) {
    if (typeof table !== 'string') throw new InvalidOutboxEventError('table', 'INVALID_VALUE', `table must be a string, not ${kindOf(table)}`);
    // A text column: Postgres refuses a NUL, and half a surrogate pair would be stored as U+FFFD.
    const fault = unstorable(table);
    if (fault !== undefined) throw new InvalidOutboxEventError('table', 'UNSTORABLE_TEXT', `table holds ${fault}`);
  }
  if (operation !== undefined && operation !== null && !OPERATIONS.has(operation)) {
    throw new InvalidOutboxEventError('operation', 'INVALID_VALUE', `operation must be 'insert', 'update' or 'delete', not ${quoted(operation)}`);
  }
  return payloadJson(event.payload, maxPayloadBytes);
}

function assertName(field: 'topic' | 'type', name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    throw new InvalidOutboxEventError(
      field,
      'INVALID_NAME',
      `${field} ${quoted(name)} is not a valid name: use 1–${MAX_NAME_LENGTH} characters of letters, digits and _ . : / -, starting with a letter or digit`,
    );
  }
}

/**
 * `tenant` and `entity` are a subscriber's scope and a delivery's lane: a control character (NUL
 * among them, which Postgres refuses in text) has no place there — `publish` refuses it too.
 */
function assertText(field: 'tenant' | 'entity', value: unknown): asserts value is string {
  if (typeof value !== 'string') throw new InvalidOutboxEventError(field, 'INVALID_VALUE', `${field} must be a string, not ${kindOf(value)}`);
  if (CONTROL_CHARACTER.test(value)) throw new InvalidOutboxEventError(field, 'CONTROL_CHARACTER', `${field} ${quoted(value)} holds a control character`);
  const fault = unstorable(value);
  if (fault !== undefined) throw new InvalidOutboxEventError(field, 'UNSTORABLE_TEXT', `${field} holds ${fault}`);
}

/** The JSON text written, checked as Tributary reads it back: what jsonb stores is its parse. */
function payloadJson(payload: unknown, maxPayloadBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new InvalidOutboxEventError('payload', 'TOO_DEEP', `payload nests too deeply to be written as JSON (the limit is ${MAX_PAYLOAD_DEPTH} levels)`, undefined, error);
    }
    throw new InvalidOutboxEventError('payload', 'NOT_JSON', `payload cannot be written as JSON: ${error instanceof Error ? error.message : String(error)}`, undefined, error);
  }
  // undefined for undefined, a function, a symbol, or a `toJSON` that returns one of them.
  if (json === undefined) throw new InvalidOutboxEventError('payload', 'INVALID_VALUE', `payload must be a JSON object; JSON.stringify wrote nothing for ${kindOf(payload)}`);
  const value: unknown = JSON.parse(json);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOutboxEventError('payload', 'INVALID_VALUE', `payload must be a JSON object, not ${kindOf(value)}`);
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxPayloadBytes) {
    throw new InvalidOutboxEventError('payload', 'TOO_LARGE', `payload is ${bytes} bytes of JSON; the limit is ${maxPayloadBytes} (the server's EVENT_MAX_PAYLOAD_BYTES: pass maxPayloadBytes if it is not the default)`);
  }
  assertStorable(value);
  return json;
}

interface JsonNode {
  readonly value: unknown;
  readonly depth: number;
  readonly parent: JsonNode | undefined;
  readonly key: string;
}

/**
 * Every key and string jsonb can hold, and no deeper than Tributary routes. An explicit stack,
 * not recursion: the depth is the caller's (and stops at the first level too deep).
 */
function assertStorable(payload: object): void {
  const stack: JsonNode[] = [{ value: payload, depth: 1, parent: undefined, key: '' }];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const { value, depth } = node;
    if (typeof value === 'string') {
      const fault = unstorable(value);
      if (fault !== undefined) throw new InvalidOutboxEventError('payload', 'UNSTORABLE_TEXT', `payload has a string at ${pointer(node)} holding ${fault}`, pointer(node));
    } else if (typeof value === 'object' && value !== null) {
      if (depth > MAX_PAYLOAD_DEPTH) throw new InvalidOutboxEventError('payload', 'TOO_DEEP', `payload nests over ${MAX_PAYLOAD_DEPTH} levels deep (at ${pointer(node)})`, pointer(node));
      for (const [key, member] of Object.entries(value)) {
        const child: JsonNode = { value: member, depth: depth + 1, parent: node, key };
        const fault = Array.isArray(value) ? undefined : unstorable(key);
        if (fault !== undefined) throw new InvalidOutboxEventError('payload', 'UNSTORABLE_TEXT', `payload has a key at ${pointer(child)} holding ${fault}`, pointer(child));
        stack.push(child);
      }
    }
  }
}

/** What jsonb (or a text column) cannot hold in `text`, described; undefined when it can hold all of it. */
function unstorable(text: string): string | undefined {
  if (text.includes('\u0000')) return 'a NUL character (U+0000), which Postgres cannot store';
  const lone = LONE_SURROGATE.exec(text);
  if (lone === null) return undefined;
  const unit = lone[0].charCodeAt(0).toString(16).toUpperCase();
  return `half of a surrogate pair (U+${unit} at index ${lone.index}: a string cut inside an emoji?), which Postgres cannot store`;
}

/** A JSON Pointer (RFC 6901) to `node`; '' is the payload itself. */
function pointer(node: JsonNode): string {
  const keys: string[] = [];
  for (let at: JsonNode | undefined = node; at?.parent !== undefined; at = at.parent) keys.push(at.key.replaceAll('~', '~0').replaceAll('/', '~1'));
  return keys.reverse().map((key) => `/${key}`).join('');
}

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A value for a message: JSON-quoted (control characters escaped), cut at 80 characters. */
function quoted(value: unknown): string {
  if (typeof value !== 'string') return kindOf(value);
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
