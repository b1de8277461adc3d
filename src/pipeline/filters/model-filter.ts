/**
 * Model-subscription filters (seed 004 "Subscription with filter", issue 5 §4):
 * `changes(model: "contacts", filter: { "status": "eq.active", "age": "gte.18" })`. Parsed once at
 * subscribe time, operands in every form they may be compared in; matching a record then reads each
 * of its values once per clause (a long string once per record, `model-filter-value.ts`), not once
 * per operand, and allocates nothing (bar numbers of over 15 characters and long strings).
 *
 * Grammar (PostgREST's operators), every clause AND-combined:
 *
 *   Filter := { Column: Clause | [Clause, …] }   at most 20 clauses in all; a list puts several
 *                                                clauses on one column ("age": ["gte.18", "lt.65"])
 *   Clause := ("eq" | "neq" | "gt" | "gte" | "lt" | "lte") "." Value
 *           | "in.(" Item ("," Item)* ")"        1–100 items
 *           | "is.null" | "is.notnull"
 *   Item   := text without , ( ) "  (surrounding spaces trimmed)
 *           | '"' text '"'                        (\" and \\ escape; may hold , ( ) and spaces)
 *   Column := 1–63 letters, digits, _ or $, not starting with a digit
 *   Value  := any text (`eq.` is the empty string); a clause has at most 500 characters
 *
 * `null` or an absent filter matches every record; `{}` too.
 *
 * Matching a record value against a clause's text:
 * - a missing column (or one holding `undefined`) matches nothing, not even `neq` or `is.null`;
 * - `null` matches only `is.null` (SQL: NULL is neither equal nor unequal to anything);
 * - numbers and bigints compare numerically with a numeric text (`-12`, `3.5`, `1e3`), exactly
 *   (`decimal-text.ts`: 9007199254740992 is below `9007199254740993`; a fractional number as the
 *   decimal it prints as, 0.1 equals `0.1`), and never match a non-numeric one (only `neq` holds);
 * - strings compare numerically, exactly, when both sides are decimal numbers without leading
 *   zeros (an int8 or numeric column decoded as "10" is >= "9"; a zip code "01234" stays text);
 *   by instant when the value is an ISO date or timestamp and the operand one too (CDC rows carry
 *   dates as "2024-06-01" and timestamps as "2024-06-01T10:30:00.000Z", `cdc/row-values.ts`:
 *   `gte.2024-06-01T12:00:00+02:00` compares instants); otherwise by code units, like the event
 *   filters (`event-filter.ts`; both compare with `json-compare.ts`). A date-time without an
 *   offset is read in the process's time zone (`Date.parse`), a bare date as UTC midnight;
 *   `infinity` and `-infinity` (dates and timestamps Postgres prints so) come after and before
 *   every date or time operand; a timestamp outside the JS Date range (after 275760) stays as
 *   Postgres prints it (`294276-12-31 23:59:59`) and compares as text;
 * - booleans equal `true` / `false` (false < true); Date objects compare by instant with an ISO date;
 * - bytes (a bytea, as the Buffer the embedded log holds or the `{ "type": "Buffer", "data": [...] }`
 *   the Redis log reads back) compare with a bytea as Postgres prints it (`\x0102ab`), byte by
 *   byte, then by length, as Postgres orders bytea; with other text only `neq` holds;
 * - anything else (objects, lists) only satisfies `neq`.
 */
import { ErrorCode, TributaryError } from '../../errors.ts';
import { compareDecimals, decimalOf, type DecimalText } from './decimal-text.ts';
import { compareNumbers, compareScalars, INTEGER_TEXT } from './json-compare.ts';
import { decimalOfValue, ISO_TIME, isShortDecimal, shortNumberOf, timeOfValue, valueFormsOf, type ValueForms } from './model-filter-value.ts';

export type ModelFilterOperator = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in' | 'is.null' | 'is.notnull';

/** A clause's value, pre-parsed in every form a record value might be compared in. */
export interface ModelFilterOperand {
  readonly text: string;
  /** Set when the text is a decimal number, for exact comparisons. */
  readonly decimal: DecimalText | undefined;
  /**
   * The number when the text is a decimal of at most 15 characters (`SHORT_DECIMAL`) without an
   * exponent (a double tells such numbers apart and keeps their order); NaN otherwise.
   */
  readonly number: number;
  /** Set when the text is an integer, for exact bigint comparisons. */
  readonly integer: bigint | undefined;
  readonly boolean: boolean | undefined;
  /** Milliseconds since the epoch when the text is an ISO date or timestamp; NaN otherwise. */
  readonly time: number;
  /** The bytes when the text is a bytea as Postgres prints it (`\x0102ab`). */
  readonly bytes: Buffer | undefined;
}

export interface ModelFilterClause {
  readonly column: string;
  readonly operator: ModelFilterOperator;
  /** One operand; `in`: the list's items; `is.*`: none. */
  readonly operands: readonly ModelFilterOperand[];
}

export interface ModelFilter {
  /** A record matches when it matches every clause; no clauses match everything. */
  readonly clauses: readonly ModelFilterClause[];
}

export const MAX_FILTER_CLAUSES = 20;
const MAX_FILTER_CLAUSE_LENGTH = 500;
const MAX_FILTER_IN_ITEMS = 100;

const COLUMN = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
const BYTEA_HEX = /^\\x(?:[0-9a-fA-F]{2})*$/;
const OPERATORS_TEXT = 'eq, neq, gt, gte, lt, lte, in, is';

const MATCH_ALL: ModelFilter = Object.freeze({ clauses: Object.freeze([]) });

/** Validates a client's filter; throws BAD_USER_INPUT (`field: 'filter'`) naming the bad column. */
export function parseModelFilter(input: unknown): ModelFilter {
  if (input === null || input === undefined) return MATCH_ALL;
  if (!isPlainObject(input)) throw invalid(undefined, 'expected an object such as { "status": "eq.active" }');
  const columns = Object.keys(input);
  if (columns.length > MAX_FILTER_CLAUSES) {
    throw invalid(undefined, `at most ${MAX_FILTER_CLAUSES} clauses (got ${columns.length} columns)`);
  }
  const clauses: ModelFilterClause[] = [];
  for (const column of columns) {
    if (column === '') throw invalid(column, 'an empty column name');
    if (!COLUMN.test(column)) {
      throw invalid(column, 'a column name is 1–63 letters, digits, _ or $, not starting with a digit');
    }
    const spec = input[column];
    const specs: readonly unknown[] = Array.isArray(spec) ? spec : [spec];
    if (specs.length === 0) throw invalid(column, 'an empty list of clauses');
    if (clauses.length + specs.length > MAX_FILTER_CLAUSES) {
      throw invalid(column, `a filter has at most ${MAX_FILTER_CLAUSES} clauses`);
    }
    for (const one of specs) clauses.push(parseClause(column, one));
  }
  return Object.freeze({ clauses: Object.freeze(clauses) });
}

/** True when the record matches every clause. Allocation-free (bar numbers of over 15 characters and long strings). */
export function matchesModelFilter(filter: ModelFilter, record: Readonly<Record<string, unknown>>): boolean {
  const clauses = filter.clauses;
  for (let i = 0; i < clauses.length; i++) {
    if (!matchesClause(clauses[i] as ModelFilterClause, record)) return false;
  }
  return true;
}

function invalid(column: string | undefined, message: string): TributaryError {
  const where = column === undefined ? '' : ` on ${JSON.stringify(column.slice(0, 64))}`;
  return new TributaryError(ErrorCode.BAD_USER_INPUT, `Invalid filter${where}: ${message}`, {
    details: { field: 'filter' },
  });
}

function isPlainObject(value: unknown): value is Readonly<Record<string, unknown>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function parseClause(column: string, spec: unknown): ModelFilterClause {
  if (typeof spec !== 'string') throw invalid(column, 'expected "operator.value", e.g. "eq.active" or "gte.18"');
  if (spec.length > MAX_FILTER_CLAUSE_LENGTH) {
    throw invalid(column, `a clause has at most ${MAX_FILTER_CLAUSE_LENGTH} characters`);
  }
  const dot = spec.indexOf('.');
  const operator = dot < 0 ? spec : spec.slice(0, dot);
  const rest = dot < 0 ? undefined : spec.slice(dot + 1);
  switch (operator) {
    case 'eq':
    case 'neq':
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      if (rest === undefined) throw invalid(column, `expected "${operator}.<value>"`);
      return freeze(column, operator, [rest]);
    case 'in':
      if (rest === undefined) throw invalid(column, 'expected "in.(a,b,…)"');
      return freeze(column, operator, parseList(column, rest));
    case 'is':
      if (rest === 'null') return freeze(column, 'is.null', []);
      if (rest === 'notnull') return freeze(column, 'is.notnull', []);
      throw invalid(column, 'use "is.null" or "is.notnull"');
    default:
      throw invalid(column, `unknown operator ${JSON.stringify(operator.slice(0, 20))}; use one of ${OPERATORS_TEXT}`);
  }
}

function freeze(column: string, operator: ModelFilterOperator, texts: readonly string[]): ModelFilterClause {
  return Object.freeze({ column, operator, operands: Object.freeze(texts.map(operandOf)) });
}

/** `(a, b, "c,d")` → items; quoted items keep their spaces and may hold `, ( )`. */
function parseList(column: string, text: string): string[] {
  if (!text.startsWith('(') || !text.endsWith(')') || text.length < 2) throw invalid(column, 'expected "in.(a,b,…)"');
  const body = text.slice(1, -1);
  if (body.trim() === '') throw invalid(column, 'an in-list needs at least one value');
  const items: string[] = [];
  let i = 0;
  for (;;) {
    while (body[i] === ' ') i++;
    if (body[i] === '"') {
      let item = '';
      for (i++; i < body.length && body[i] !== '"'; i++) {
        if (body[i] === '\\') i++;
        item += body[i] ?? '';
      }
      if (i >= body.length) throw invalid(column, 'an in-list value is missing its closing quote');
      for (i++; body[i] === ' '; ) i++;
      items.push(item);
    } else {
      let end = body.indexOf(',', i);
      if (end < 0) end = body.length;
      const item = body.slice(i, end).trim();
      if (item === '') throw invalid(column, 'an empty in-list value; write "" for the empty string');
      if (/[()"]/.test(item)) throw invalid(column, 'quote in-list values that contain ( ) or "');
      items.push(item);
      i = end;
    }
    if (items.length > MAX_FILTER_IN_ITEMS) throw invalid(column, `an in-list has at most ${MAX_FILTER_IN_ITEMS} values`);
    if (i >= body.length) return items;
    if (body[i] !== ',') throw invalid(column, 'expected "," between in-list values');
    i++;
  }
}

function operandOf(text: string): ModelFilterOperand {
  return Object.freeze({
    text,
    decimal: decimalOf(text),
    number: isShortDecimal(text) ? Number(text) : NaN,
    integer: INTEGER_TEXT.test(text) ? BigInt(text) : undefined,
    boolean: text === 'true' ? true : text === 'false' ? false : undefined,
    time: ISO_TIME.test(text) ? Date.parse(text) : NaN,
    bytes: BYTEA_HEX.test(text) ? Buffer.from(text.slice(2), 'hex') : undefined,
  });
}

function matchesClause(clause: ModelFilterClause, record: Readonly<Record<string, unknown>>): boolean {
  if (!Object.hasOwn(record, clause.column)) return false;
  const value = record[clause.column];
  if (value === undefined) return false;
  switch (clause.operator) {
    case 'is.null':
      return value === null;
    case 'is.notnull':
      return value !== null;
  }
  if (value === null) return false;
  const forms = valueFormsOf(record, clause.column, value);
  const operands = clause.operands;
  const operand = operands[0] as ModelFilterOperand;
  switch (clause.operator) {
    case 'eq':
      return compare(forms, operand) === 0;
    case 'neq':
      // Incomparable (NaN) counts as unequal.
      return compare(forms, operand) !== 0;
    case 'gt':
      return compare(forms, operand) > 0;
    case 'gte':
      return compare(forms, operand) >= 0;
    case 'lt':
      return compare(forms, operand) < 0;
    case 'lte':
      return compare(forms, operand) <= 0;
    case 'in':
      for (let i = 0; i < operands.length; i++) if (compare(forms, operands[i] as ModelFilterOperand) === 0) return true;
      return false;
  }
}

/**
 * -1, 0 or 1 as the value sorts before, with or after the operand; NaN when incomparable. The
 * value's forms are read on first use and kept for the clause's other operands.
 */
function compare(forms: ValueForms, operand: ModelFilterOperand): number {
  const value = forms.value;
  switch (typeof value) {
    case 'string':
      if (operand.decimal !== undefined) {
        // A short decimal is a DECIMAL_NUMBER too; a longer one is read as one only when it is one.
        const number = shortNumberOf(forms);
        if (!Number.isNaN(number) && !Number.isNaN(operand.number)) return compareNumbers(number, operand.number);
        const decimal = decimalOfValue(forms);
        if (decimal !== undefined) return compareDecimals(decimal, operand.decimal);
      }
      if (!Number.isNaN(operand.time)) {
        const time = timeOfValue(forms);
        if (!Number.isNaN(time)) return compareNumbers(time, operand.time);
      }
      return compareScalars(value, operand.text);
    case 'number':
      if (operand.decimal === undefined || !Number.isFinite(value)) return NaN;
      if (operand.integer !== undefined && Number.isInteger(value)) return compareNumbers(value, operand.integer);
      if (!Number.isNaN(operand.number)) return compareNumbers(value, operand.number);
      // The decimal the number prints as (its shortest round trip): 0.1 is `0.1`, not 0.1000000000000000055….
      return compareDecimals(decimalOfValue(forms) as DecimalText, operand.decimal);
    case 'bigint':
      if (operand.integer !== undefined) return compareNumbers(value, operand.integer);
      return operand.decimal === undefined ? NaN : compareDecimals(decimalOfValue(forms) as DecimalText, operand.decimal);
    case 'boolean':
      return compareScalars(value, operand.boolean);
  }
  if (value instanceof Date) return Number.isNaN(operand.time) ? NaN : compareNumbers(value.getTime(), operand.time);
  if (operand.bytes !== undefined) {
    if (Buffer.isBuffer(value)) return Math.sign(Buffer.compare(value, operand.bytes));
    if (isBufferJson(value)) return compareByteList(value.data, operand.bytes);
  }
  return NaN;
}

/** A Buffer as JSON gives it, as the Redis log reads it back: `{ "type": "Buffer", "data": [...] }`. */
function isBufferJson(value: unknown): value is { readonly data: readonly unknown[] } {
  const object = value as Readonly<Record<string, unknown>>;
  return Object.hasOwn(object, 'type') && object['type'] === 'Buffer' && Object.hasOwn(object, 'data') && Array.isArray(object['data']);
}

/** As `Buffer.compare` (bytes in order, then length), without copying the list into a Buffer. */
function compareByteList(list: readonly unknown[], bytes: Buffer): number {
  const length = Math.min(list.length, bytes.length);
  for (let i = 0; i < length; i++) {
    const byte = list[i];
    if (typeof byte !== 'number') return NaN;
    if (byte !== bytes[i]) return byte < (bytes[i] as number) ? -1 : 1;
  }
  return Math.sign(list.length - bytes.length);
}
