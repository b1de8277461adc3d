/**
 * Server-side event filters (`events(where: EventWhere)`), compiled once at subscribe time into
 * plain closures so the dispatcher pays one call per subscriber per event: no parsing, no path
 * splitting, no recursion through promises.
 *
 * Rules the compiled predicate keeps for any JSON-shaped event, whatever its content:
 * - it never throws: every step into the event checks the type it walks through;
 * - a path that leads nowhere is "missing" (`undefined` internally); JSON has no `undefined`, so
 *   an own property holding `undefined` counts as missing too;
 * - only own properties are read, so `payload.constructor` or `payload.__proto__` never reach
 *   `Object.prototype`.
 *
 * `metadata.timestamp` is milliseconds since the epoch inside, an ISO date-time (`DateTime`) in the
 * API: its operands may be either, and compare by instant; any other operand is refused.
 *
 * `metadata.scope` is deliberately not a path: isolation is structural (the scope is part of the
 * channel key, see `scope.ts`), and letting clients probe it would turn it into a filter.
 */
import { DateTimeResolver } from 'graphql-scalars';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { isJsonObject } from '../events/json.ts';
import { compareScalars, jsonEqual } from './json-compare.ts';

/** The GraphQL input `EventWhere`, as graphql-js hands it over (absent or null when not given). */
export interface EventWhere {
  /** A dot path into the event: `id | topic | source | type | payload(.key)* | metadata.<key>`. */
  readonly field?: string | null;
  /** Deep JSON equality. `eq: null` matches a field that is null, not a missing one. */
  readonly eq?: unknown;
  /** The negation of `eq`: true for a missing field. */
  readonly ne?: unknown;
  /**
   * At most {@link MAX_IN_ITEMS} items, deep equality per item. Each operand (an item here) is at
   * most {@link MAX_OPERAND_BYTES} as JSON, a filter's all together {@link MAX_FILTER_OPERAND_BYTES}.
   */
  readonly in?: readonly unknown[] | null;
  /** The negation of `in`: true for a missing field. */
  readonly nin?: readonly unknown[] | null;
  /**
   * `gt`…`lte`: number vs number or string vs string (code-unit order); anything else is false.
   * On `metadata.timestamp` a date-time operand counts as its instant.
   */
  readonly gt?: unknown;
  readonly gte?: unknown;
  readonly lt?: unknown;
  readonly lte?: unknown;
  /** `true`: the path resolves to a value, null included; `false`: it is missing. */
  readonly exists?: boolean | null;
  readonly and?: readonly EventWhere[] | null;
  readonly or?: readonly EventWhere[] | null;
  readonly not?: EventWhere | null;
}

export type EventPredicate = (event: RealtimeEvent) => boolean;

/** Nesting levels of `and`/`or`/`not`, the root being level 1. */
const MAX_WHERE_DEPTH = 8;
/** `EventWhere` nodes in one filter, the root included. */
const MAX_WHERE_NODES = 64;
const MAX_IN_ITEMS = 100;
/** Keys after `payload` in a path. */
const MAX_PAYLOAD_SEGMENTS = 10;
/** Nesting of an `eq`/`ne`/`in`/`nin` operand; keeps the compiled matchers' depth bounded. */
const MAX_OPERAND_DEPTH = 16;
/**
 * Bytes of one operand as JSON (UTF-8): an `eq`, `ne`, `gt`…`lte` value or one `in`/`nin` item.
 * Matching costs time in proportion to the operands, for every event and subscription: 3,000
 * subscriptions, each with a 38 KB value that never matched, took ~1 s of the event loop per event.
 */
const MAX_OPERAND_BYTES = 4 * 1024;
/** Bytes of every operand of one filter together, as JSON: what matching one event costs it at most. */
const MAX_FILTER_OPERAND_BYTES = 16 * 1024;

const SCALAR_ROOTS: ReadonlySet<string> = new Set(['id', 'topic', 'source', 'type']);
const METADATA_KEYS: ReadonlySet<string> = new Set(['timestamp', 'table', 'operation', 'revision', 'entity']);
const PAYLOAD_SEGMENT = /^[A-Za-z0-9_-]{1,100}$/;
/** Canonical array indices only: `0`, `17`, never `01` or `-1`. */
const ARRAY_INDEX = /^(?:0|[1-9][0-9]{0,8})$/;
const OPERATORS = ['eq', 'ne', 'in', 'nin', 'gt', 'gte', 'lt', 'lte', 'exists'] as const;
const KNOWN_KEYS: ReadonlySet<string> = new Set<string>([...OPERATORS, 'field', 'and', 'or', 'not']);

type Matcher = (value: unknown) => boolean;
/** What one filter has used of its limits so far. */
interface Budget {
  nodes: number;
  operandBytes: number;
}
/** Turns a client's operand into the form the field holds (`at` names it in an error). */
type Normalize = (value: unknown, at: string) => unknown;

/** `undefined` when there is no filter: every event matches. */
export function compileEventWhere(where: EventWhere | null | undefined): EventPredicate | undefined {
  if (where === null || where === undefined) return undefined;
  return compileNode(where, 'where', 1, { nodes: 0, operandBytes: 0 });
}

function invalid(message: string): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: { field: 'where' } });
}

function compileNode(node: unknown, at: string, depth: number, budget: Budget): EventPredicate {
  if (depth > MAX_WHERE_DEPTH) {
    throw invalid(`${at}: filters may nest at most ${MAX_WHERE_DEPTH} levels deep`);
  }
  budget.nodes += 1;
  if (budget.nodes > MAX_WHERE_NODES) {
    throw invalid(`${at}: a filter may have at most ${MAX_WHERE_NODES} conditions in total`);
  }
  if (!isJsonObject(node)) throw invalid(`${at}: expected an EventWhere object`);
  for (const key of Object.keys(node)) {
    if (!KNOWN_KEYS.has(key)) throw invalid(`${at}: unknown key "${key}"`);
  }
  const where = node as EventWhere;
  const parts: EventPredicate[] = [];

  const hasOperator = OPERATORS.some((op) => given(where, op));
  const field = where.field;
  if (field !== null && field !== undefined) {
    if (typeof field !== 'string') throw invalid(`${at}.field: expected a dot path string`);
    if (!hasOperator) {
      throw invalid(`${at}: "field" (${JSON.stringify(field)}) needs an operator: one of ${OPERATORS.join(', ')}`);
    }
    parts.push(compileComparisons(where, field, at, budget));
  } else if (hasOperator) {
    const ops = OPERATORS.filter((op) => given(where, op)).join(', ');
    throw invalid(`${at}: operator ${ops} needs a "field" to compare`);
  }

  if (where.and !== null && where.and !== undefined) {
    const children = childList(where.and, `${at}.and`);
    // `and: []` adds nothing: an empty conjunction matches.
    for (let i = 0; i < children.length; i++) {
      parts.push(compileNode(children[i], `${at}.and[${i}]`, depth + 1, budget));
    }
  }
  if (where.or !== null && where.or !== undefined) {
    const children = childList(where.or, `${at}.or`);
    const alternatives: EventPredicate[] = [];
    for (let i = 0; i < children.length; i++) {
      alternatives.push(compileNode(children[i], `${at}.or[${i}]`, depth + 1, budget));
    }
    parts.push(anyOf(alternatives));
  }
  if (where.not !== null && where.not !== undefined) {
    const inner = compileNode(where.not, `${at}.not`, depth + 1, budget);
    parts.push((event) => !inner(event));
  }

  if (parts.length === 0 && (where.and === null || where.and === undefined)) {
    throw invalid(`${at}: an empty filter; give "field" with an operator, or "and", "or", "not"`);
  }
  return allOf(parts);
}

/** `eq`/`ne` keep an explicit `null` (it is the operand); for the rest null means "not given". */
function given(where: EventWhere, op: (typeof OPERATORS)[number]): boolean {
  const value = where[op];
  return op === 'eq' || op === 'ne' ? value !== undefined : value !== undefined && value !== null;
}

function childList(value: unknown, at: string): readonly unknown[] {
  if (!Array.isArray(value)) throw invalid(`${at}: expected a list of EventWhere objects`);
  return value;
}

function allOf(parts: readonly EventPredicate[]): EventPredicate {
  if (parts.length === 0) return () => true;
  if (parts.length === 1) return parts[0] as EventPredicate;
  if (parts.length === 2) {
    const [a, b] = parts as [EventPredicate, EventPredicate];
    return (event) => a(event) && b(event);
  }
  return (event) => {
    for (let i = 0; i < parts.length; i++) if (!(parts[i] as EventPredicate)(event)) return false;
    return true;
  };
}

function anyOf(parts: readonly EventPredicate[]): EventPredicate {
  // `or: []` matches nothing: an empty disjunction is false.
  if (parts.length === 0) return () => false;
  if (parts.length === 1) return parts[0] as EventPredicate;
  return (event) => {
    for (let i = 0; i < parts.length; i++) if ((parts[i] as EventPredicate)(event)) return true;
    return false;
  };
}

function compileComparisons(where: EventWhere, path: string, at: string, budget: Budget): EventPredicate {
  const read = compilePath(path, `${at}.field`);
  // Clients write the GraphQL enum names (DATABASE, SYNC, SOCKET); events carry the lower-case
  // wire values. Lower-casing string operands once here keeps the per-event path allocation-free.
  // Likewise a timestamp is read once into the milliseconds the event holds.
  const normalize: Normalize = path === 'source' ? lowerStrings : path === 'metadata.timestamp' ? epochMilliseconds : (value) => value;
  const checks: Matcher[] = [];

  if (given(where, 'eq')) checks.push(compileEquals(normalize(where.eq, `${at}.eq`), `${at}.eq`, budget));
  if (given(where, 'ne')) {
    const equals = compileEquals(normalize(where.ne, `${at}.ne`), `${at}.ne`, budget);
    checks.push((value) => !equals(value));
  }
  if (given(where, 'in')) checks.push(compileIn(where.in, normalize, `${at}.in`, budget));
  if (given(where, 'nin')) {
    const within = compileIn(where.nin, normalize, `${at}.nin`, budget);
    checks.push((value) => !within(value));
  }
  for (const op of ['gt', 'gte', 'lt', 'lte'] as const) {
    if (given(where, op)) checks.push(compileOrder(op, normalize(where[op], `${at}.${op}`), `${at}.${op}`, budget));
  }
  if (given(where, 'exists')) {
    if (typeof where.exists !== 'boolean') throw invalid(`${at}.exists: expected true or false`);
    checks.push(where.exists ? (value) => value !== undefined : (value) => value === undefined);
  }

  const check = checks.length === 1 ? (checks[0] as Matcher) : allMatch(checks);
  return (event) => check(read(event));
}

function allMatch(checks: readonly Matcher[]): Matcher {
  return (value) => {
    for (let i = 0; i < checks.length; i++) if (!(checks[i] as Matcher)(value)) return false;
    return true;
  };
}

function lowerStrings(value: unknown): unknown {
  return typeof value === 'string' ? value.toLowerCase() : value;
}

/** A `metadata.timestamp` operand as milliseconds: a number as given, a date-time (RFC 3339, as `DateTime`) as its instant. */
function epochMilliseconds(value: unknown, at: string): unknown {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    try {
      return DateTimeResolver.parseValue(value).getTime();
    } catch {
      // Refused below, with the field's rule.
    }
  }
  throw invalid(`${at}: metadata.timestamp takes milliseconds since the epoch or a date-time such as "2026-01-31T12:00:00Z"`);
}

/** Validates a path and returns a reader that yields the value, or `undefined` when missing. */
function compilePath(path: string, at: string): (event: RealtimeEvent) => unknown {
  const segments = path.split('.');
  const root = segments[0] ?? '';
  const bad = (why: string) => invalid(`${at}: invalid path ${JSON.stringify(path)}: ${why}`);
  if (segments.some((segment) => segment === '')) throw bad('a path segment is empty');
  if (SCALAR_ROOTS.has(root)) {
    if (segments.length > 1) throw bad(`"${root}" is a string and takes no sub-path`);
  } else if (root === 'metadata') {
    const key = segments[1];
    if (key === 'scope') throw bad('metadata.scope cannot be filtered on');
    if (key === undefined || segments.length > 2 || !METADATA_KEYS.has(key)) {
      throw bad(`under metadata use one of ${[...METADATA_KEYS].map((k) => `metadata.${k}`).join(', ')}`);
    }
  } else if (root === 'payload') {
    if (segments.length - 1 > MAX_PAYLOAD_SEGMENTS) {
      throw bad(`a payload path has at most ${MAX_PAYLOAD_SEGMENTS} keys after "payload"`);
    }
    for (let i = 1; i < segments.length; i++) {
      if (!PAYLOAD_SEGMENT.test(segments[i] ?? '')) {
        throw bad('payload keys are 1 to 100 characters of A-Z, a-z, 0-9, "_" and "-"');
      }
    }
  } else {
    throw bad(`a path starts with one of ${[...SCALAR_ROOTS].join(', ')}, payload, metadata`);
  }

  if (segments.length === 1) return (event) => child(event, root);
  if (segments.length === 2) {
    const key = segments[1] as string;
    return (event) => child(child(event, root), key);
  }
  return (event) => {
    let value: unknown = event;
    for (let i = 0; i < segments.length && value !== undefined; i++) value = child(value, segments[i] as string);
    return value;
  };
}

/** One step into a JSON value; objects by own key, arrays by canonical index; else missing. */
function child(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) return ARRAY_INDEX.test(key) ? (value as unknown[])[Number(key)] : undefined;
  return Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * A matcher for deep JSON equality with `operand` (`json-compare.ts`, strict: `5` is not `"5"`;
 * key order ignored; keys holding `undefined` do not count). The operand is checked here, once.
 */
function compileEquals(operand: unknown, at: string, budget: Budget): Matcher {
  assertJsonOperand(operand, at, 1);
  chargeOperand(operand, at, budget);
  return (value) => jsonEqual(value, operand);
}

/**
 * Counts a checked operand (a JSON value, its depth bounded) against {@link MAX_OPERAND_BYTES} and
 * the filter's {@link MAX_FILTER_OPERAND_BYTES}, as the filter holds it (a `metadata.timestamp`
 * date-time as its milliseconds); keys holding `undefined` do not count, as they do not when matching.
 */
function chargeOperand(operand: unknown, at: string, budget: Budget): void {
  const bytes = Buffer.byteLength(JSON.stringify(operand));
  if (bytes > MAX_OPERAND_BYTES) throw invalid(`${at}: a value may be at most ${MAX_OPERAND_BYTES} bytes as JSON (this one is ${bytes})`);
  budget.operandBytes += bytes;
  if (budget.operandBytes > MAX_FILTER_OPERAND_BYTES) {
    throw invalid(`${at}: a filter's values may be at most ${MAX_FILTER_OPERAND_BYTES} bytes as JSON in all`);
  }
}

function assertJsonOperand(operand: unknown, at: string, depth: number): void {
  if (depth > MAX_OPERAND_DEPTH) throw invalid(`${at}: a value may nest at most ${MAX_OPERAND_DEPTH} levels deep`);
  if (operand === null || typeof operand === 'string' || typeof operand === 'boolean') return;
  if (typeof operand === 'number') {
    if (!Number.isFinite(operand)) throw invalid(`${at}: numbers must be finite`);
    return;
  }
  if (Array.isArray(operand)) {
    operand.forEach((item: unknown, i) => assertJsonOperand(item, `${at}[${i}]`, depth + 1));
    return;
  }
  if (isJsonObject(operand)) {
    for (const key of Object.keys(operand)) {
      if (operand[key] !== undefined) assertJsonOperand(operand[key], `${at}.${key}`, depth + 1);
    }
    return;
  }
  throw invalid(`${at}: expected a JSON value`);
}

function compileIn(list: unknown, normalize: Normalize, at: string, budget: Budget): Matcher {
  if (!Array.isArray(list)) throw invalid(`${at}: expected a list`);
  if (list.length > MAX_IN_ITEMS) throw invalid(`${at}: a list has at most ${MAX_IN_ITEMS} items (got ${list.length})`);
  // Scalars go in a Set (SameValueZero equals `===` for finite numbers); compound items keep matchers.
  const scalars = new Set<unknown>();
  const compound: Matcher[] = [];
  for (let i = 0; i < list.length; i++) {
    const item = normalize(list[i], `${at}[${i}]`);
    const equals = compileEquals(item, `${at}[${i}]`, budget);
    if (typeof item === 'object' && item !== null) compound.push(equals);
    else scalars.add(item);
  }
  if (compound.length === 0) return (value) => value !== undefined && scalars.has(value);
  return (value) => {
    if (value === undefined) return false;
    if (typeof value !== 'object' || value === null) return scalars.has(value);
    for (let i = 0; i < compound.length; i++) if ((compound[i] as Matcher)(value)) return true;
    return false;
  };
}

function compileOrder(op: 'gt' | 'gte' | 'lt' | 'lte', operand: unknown, at: string, budget: Budget): Matcher {
  if (typeof operand === 'number') {
    if (!Number.isFinite(operand)) throw invalid(`${at}: numbers must be finite`);
  } else if (typeof operand !== 'string') {
    const got = operand === null ? 'null' : Array.isArray(operand) ? 'a list' : typeof operand;
    throw invalid(`${at}: expected a number or a string, got ${got}`);
  }
  chargeOperand(operand, at, budget);
  // Mixed types never compare (`json-compare.ts`): "10" > 9 is false, not coerced.
  switch (op) {
    case 'gt':
      return (value) => compareScalars(value, operand) > 0;
    case 'gte':
      return (value) => compareScalars(value, operand) >= 0;
    case 'lt':
      return (value) => compareScalars(value, operand) < 0;
    case 'lte':
      return (value) => compareScalars(value, operand) <= 0;
  }
}
