/**
 * CDC row values in one form, whichever way a row is read and wherever its event is logged.
 *
 * An event in the embedded log keeps its values as they are; one in the Redis log goes through JSON
 * and comes back as JSON gave them. Filters would judge a row differently per mode, and `records`
 * differently from `changes`, unless the values are in their JSON form from the start. So, where a
 * row is read (pgoutput decoding and `records`' queries alike), in two steps:
 *
 * 1. {@link columnParser} in place of pg's parser for dates and timestamps (and their arrays). pg
 *    parses them into Dates, which loses what is not a JS Date: a `date` is *local* midnight (the
 *    day before east of UTC), a `timestamp` (without time zone) a local time (shifted by the
 *    process's UTC offset, lost in a daylight-saving gap), `infinity` a number, a year past 275760
 *    an invalid Date. From Postgres's text instead, in DateStyle ISO (Postgres's default, which
 *    pg's parsers assume too):
 *    - a `date` is that text: its calendar day (`2024-06-01`, `0044-03-15 BC`);
 *    - a `timestamp` its wall clock read as UTC (`2024-06-01T10:30:00.000Z`, what JSON printed of
 *      it under `TZ=UTC`); a `timestamptz` its instant, likewise;
 *    - `infinity`, `-infinity`, and a timestamp outside the JS Date range (after 275760-09-13) stay
 *      as Postgres prints them (`294276-12-31 23:59:59`).
 * 2. {@link columnValue} on every decoded value: its JSON form (a non-finite number as null, a
 *    bigint as its decimal text, an interval as its fields). Buffers stay (a bytea key or topic
 *    placeholder is spelled as Postgres prints it, `mapping-identity.ts`; JSON renders them at the
 *    edge as `{ "type": "Buffer", "data": [...] }`, and model filters judge either form alike,
 *    `model-filter.ts`), and json/jsonb values, JSON by construction, are not walked.
 */
import pg from 'pg';

/** Type OIDs: date, timestamp, timestamptz and their arrays; json, jsonb and theirs; text[]. */
const DATE = 1082;
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;
const ARRAY_ELEMENTS: ReadonlyMap<number, number> = new Map([
  [1182, DATE],
  [1115, TIMESTAMP],
  [1185, TIMESTAMPTZ],
]);
const JSON_TYPES: ReadonlySet<number> = new Set([114, 199, 3802, 3807]);
const TEXT_ARRAY = 1009;

type TextParser = (text: string) => unknown;

/** pg's parsers, typed for any OID (the typings list builtin ones only). */
const pgParser = pg.types.getTypeParser as (typeOid: number, format?: 'text' | 'binary') => TextParser;

/** `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]`, a timestamp without time zone in DateStyle ISO. */
const WALL_CLOCK = /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?( BC)?$/;

const TEXT_PARSERS: ReadonlyMap<number, (text: string) => string> = new Map([
  [DATE, (text: string) => text],
  [TIMESTAMP, wallClockInstant],
  [TIMESTAMPTZ, instant],
]);

/** The parser for a column of type `typeOid` (text format): pg's, but for dates and timestamps. */
export function columnParser(typeOid: number): TextParser {
  const element = TEXT_PARSERS.get(ARRAY_ELEMENTS.get(typeOid) ?? typeOid);
  if (element === undefined) return pgParser(typeOid);
  if (!ARRAY_ELEMENTS.has(typeOid)) return element;
  // Any array's literal splits as text[]'s does: items as text, NULL as null, nested for more dimensions.
  const textArray = pgParser(TEXT_ARRAY);
  return (text) => mapItems(textArray(text) as unknown[], element);
}

/** For `query({ types })`: the row parsers of {@link columnParser} (pg's for binary values). */
export const ROW_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((typeOid: number, format?: 'text' | 'binary') =>
    format === 'binary' ? pgParser(typeOid, format) : columnParser(typeOid)) as pg.CustomTypesConfig['getTypeParser'],
};

/** A decoded column value (of type `typeOid`) in its JSON form; see the module comment. */
export function columnValue(value: unknown, typeOid: number | undefined): unknown {
  return typeOid !== undefined && JSON_TYPES.has(typeOid) ? value : jsonValue(value);
}

/**
 * The value JSON carries for `value`, Buffers kept; `value` itself when it is in that form already,
 * so a row of strings and numbers costs no allocation. One walk, and none for JSON text.
 */
function jsonValue(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'object':
      if (value === null || Buffer.isBuffer(value)) return value;
      if (Array.isArray(value)) return listValue(value);
      if (isPlainObject(value)) return objectValue(value as Readonly<Record<string, unknown>>);
      // A Date, an interval, a class with toJSON: what JSON makes of it.
      return JSON.parse(JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item))) as unknown;
    default:
      // Functions and symbols: JSON leaves them out.
      return undefined;
  }
}

function listValue(list: readonly unknown[]): readonly unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < list.length; i++) {
    const item = list[i];
    const json = jsonValue(item) ?? null;
    if (json === item) continue;
    copy ??= list.slice();
    copy[i] = json;
  }
  return copy ?? list;
}

function objectValue(object: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(object)) {
    const item = object[key];
    const json = jsonValue(item);
    if (json === item) continue;
    // Spread and define: a key named `__proto__` stays a key.
    copy ??= { ...object };
    if (json === undefined) delete copy[key];
    else Object.defineProperty(copy, key, { value: json, enumerable: true, writable: true, configurable: true });
  }
  return copy ?? object;
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return (prototype === Object.prototype || prototype === null) && !('toJSON' in value);
}

function mapItems(items: readonly unknown[], parse: (text: string) => string): unknown[] {
  return items.map((item) => (typeof item === 'string' ? parse(item) : Array.isArray(item) ? mapItems(item, parse) : item));
}

/** A timestamp without time zone: its wall clock as a UTC instant; Postgres's text when it is none. */
function wallClockInstant(text: string): string {
  const match = WALL_CLOCK.exec(text);
  if (match === null) return text; // infinity, -infinity
  const [, year, month, day, hours, minutes, seconds, fraction, bc] = match;
  // Milliseconds, truncated as pg's parser truncates them.
  const date = new Date(Date.UTC(2000, 0, 1, Number(hours), Number(minutes), Number(seconds), Number((fraction ?? '').slice(0, 3).padEnd(3, '0'))));
  // Set after: Date.UTC reads years 0–99 as 1900–1999. Before year 1 is 1 BC, year 0 in ISO.
  date.setUTCFullYear(bc === undefined ? Number(year) : 1 - Number(year), Number(month) - 1, Number(day));
  return Number.isNaN(date.getTime()) ? text : date.toISOString();
}

/** A timestamp with time zone: its instant, as pg reads it; Postgres's text when it is none. */
function instant(text: string): string {
  const parsed = pgParser(TIMESTAMPTZ)(text);
  return parsed instanceof Date && !Number.isNaN(parsed.getTime()) ? parsed.toISOString() : text;
}
