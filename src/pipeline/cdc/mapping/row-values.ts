/**
 * CDC row values in one form, whichever way a row is read and wherever its event is logged.
 *
 * pg's type parsers (used by pgoutput decoding and by `records`' queries alike) turn `date` and
 * `timestamp(tz)` into Date objects and `bytea` into Buffers. An event in the embedded log keeps
 * them; one in the Redis log goes through JSON and comes back as text. Filters would then judge a
 * row differently per mode, and `records` differently from `changes`. So values are put in their
 * JSON form where rows are read, in two steps:
 *
 * 1. {@link columnValue}, with the column's type, where a row is read: a timestamp becomes its ISO
 *    instant (`2024-06-01T10:30:00.000Z`, what JSON made of it on the wire before); a `date` its
 *    calendar day (`2024-06-01`): pg parses a date as *local* midnight, which JSON printed as the
 *    day before in a time zone east of UTC. Buffers stay, so a bytea key or topic placeholder is
 *    still spelled as Postgres prints it (`mapping-identity.ts`).
 * 2. {@link jsonRow} / {@link jsonValue} on what leaves as a record or payload: the value JSON
 *    gives (a Buffer as `{ "type": "Buffer", "data": [...] }`, a non-finite number as null, an
 *    interval as its fields), so the embedded log holds what the Redis log reads back.
 */

/** pg parses these Postgres types (`date`, `date[]`) into Dates at local midnight. */
const CALENDAR_DAY_TYPES: ReadonlySet<number> = new Set([1082, 1182]);

/**
 * A column value as pg parsed it, with its Dates (in lists too) as text: a calendar day for a
 * `date` column (`typeOid`), an ISO instant for any other. An invalid Date becomes null, as in JSON.
 */
export function columnValue(value: unknown, typeOid: number | undefined): unknown {
  if (value instanceof Date) return typeOid !== undefined && CALENDAR_DAY_TYPES.has(typeOid) ? calendarDayOf(value) : instantOf(value);
  if (Array.isArray(value)) return value.map((item: unknown) => columnValue(item, typeOid));
  return value;
}

/** The row with every value in its JSON form; the row itself when all already are. */
export function jsonRow(row: Readonly<Record<string, unknown>>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const column of Object.keys(row)) {
    const value = row[column];
    const json = jsonValue(value);
    if (json === value) continue;
    // Spread and define: a column named `__proto__` stays a column.
    copy ??= { ...row };
    Object.defineProperty(copy, column, { value: json, enumerable: true, writable: true, configurable: true });
  }
  return copy ?? row;
}

/** The value JSON carries for `value` (a bigint as its decimal text); `value` itself when it is JSON already. */
export function jsonValue(value: unknown): unknown {
  if (isJson(value)) return value;
  if (typeof value === 'bigint') return value.toString();
  if (value === undefined) return undefined;
  return JSON.parse(JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item))) as unknown;
}

function isJson(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      if (value === null) return true;
      if (Array.isArray(value)) return value.every(isJson);
      if (!isPlainObject(value)) return false;
      for (const key of Object.keys(value)) if (!isJson((value as Record<string, unknown>)[key])) return false;
      return true;
    default:
      return false;
  }
}

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return (prototype === Object.prototype || prototype === null) && !('toJSON' in value);
}

function instantOf(date: Date): string | null {
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** The day pg parsed as local midnight, as Postgres prints it (`0044-03-15 BC` before year 1). */
function calendarDayOf(date: Date): string | null {
  if (Number.isNaN(date.getTime())) return null;
  const year = date.getFullYear();
  const day = `${pad(year > 0 ? year : 1 - year, 4)}-${pad(date.getMonth() + 1, 2)}-${pad(date.getDate(), 2)}`;
  return year > 0 ? day : `${day} BC`;
}

function pad(value: number, digits: number): string {
  return String(value).padStart(digits, '0');
}
