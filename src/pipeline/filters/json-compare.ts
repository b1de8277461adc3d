/**
 * The one comparison core behind every filter and condition on JSON-shaped data: the event
 * filters (`events(where:)`, `event-filter.ts`), the model filters (`changes(filter:)`,
 * `model-filter.ts`) and the CDC mapping conditions (`cdc/mapping/mapping-evaluate.ts`). They
 * differ only in how numbers written as text count, which each chooses explicitly.
 *
 * Rules every function keeps, whatever the input:
 * - it never throws and never reads inherited properties (`__proto__`, `constructor`);
 * - numbers and bigints compare exactly, without conversion (5n equals 5; 2^53 + 1 as a bigint
 *   is above 2^53 as a number); NaN compares as nothing;
 * - a key holding `undefined` does not count (JSON has no `undefined`);
 * - dates compare by instant, byte arrays by content.
 */

/** A decimal number as text, without exponent or leading zeros (an int8 or numeric decoded as text). */
export const DECIMAL_TEXT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/;
/** An integer as text, without leading zeros. */
export const INTEGER_TEXT = /^-?(?:0|[1-9][0-9]*)$/;

/** Deeper than any sane JSON value: called different, which only ever makes a "changed" true. */
const MAX_DEPTH = 64;

export interface JsonEqualOptions {
  /**
   * `strict` (JSON equality, the event filters): `5` and `"5"` differ. `by-value` (mapping
   * conditions, which see columns decoded as text): numbers, bigints and decimal strings compare
   * by value when at least one side is a number or bigint; two strings still compare as strings.
   * @default 'strict'
   */
  readonly numbers?: 'strict' | 'by-value';
}

/** Deep equality of two decoded JSON (or row) values; see the module comment. */
export function jsonEqual(a: unknown, b: unknown, options: JsonEqualOptions = {}): boolean {
  return equal(a, b, options.numbers === 'by-value', 0);
}

/**
 * -1, 0 or 1 as `a` sorts before, with or after `b`; NaN when they do not compare. Numbers and
 * bigints with each other (exactly), strings with strings (code units), booleans with booleans
 * (false < true), dates with dates (by instant); any other pair is NaN.
 */
export function compareScalars(a: unknown, b: unknown): number {
  if (isNumber(a) && isNumber(b)) return compareNumbers(a, b);
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (a instanceof Date && b instanceof Date) return compareNumbers(a.getTime(), b.getTime());
  return NaN;
}

/**
 * `<`, `>` and `==` compare numbers, bigints and mixed pairs exactly, without conversion (`==` is
 * the one operator that compares 5n with 5); NaN on either side compares as nothing.
 */
export function compareNumbers(a: number | bigint, b: number | bigint): number {
  return a < b ? -1 : a > b ? 1 : a == b ? 0 : NaN;
}

/** A number, a bigint, or a decimal text as its value (integers exactly, as bigint); undefined otherwise. */
function numericValue(value: unknown): number | bigint | undefined {
  if (isNumber(value)) return value;
  if (typeof value !== 'string' || !DECIMAL_TEXT.test(value)) return undefined;
  return INTEGER_TEXT.test(value) ? BigInt(value) : Number(value);
}

function isNumber(value: unknown): value is number | bigint {
  return typeof value === 'number' || typeof value === 'bigint';
}

function equal(a: unknown, b: unknown, byValue: boolean, depth: number): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return false;
  if (isNumber(a) || isNumber(b)) {
    if (!byValue) return isNumber(a) && isNumber(b) && compareNumbers(a, b) === 0;
    const x = numericValue(a);
    const y = numericValue(b);
    return x !== undefined && y !== undefined && compareNumbers(x, y) === 0;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || depth >= MAX_DEPTH) return false;
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i], byValue, depth + 1)) return false;
    return true;
  }
  const left = a as Readonly<Record<string, unknown>>;
  const right = b as Readonly<Record<string, unknown>>;
  let count = 0;
  for (const key in left) {
    if (!Object.hasOwn(left, key) || left[key] === undefined) continue;
    if (!Object.hasOwn(right, key) || !equal(left[key], right[key], byValue, depth + 1)) return false;
    count++;
  }
  // Every counted key of `left` is in `right` with a defined value: equal counts mean equal key sets.
  for (const key in right) if (Object.hasOwn(right, key) && right[key] !== undefined) count--;
  return count === 0;
}
