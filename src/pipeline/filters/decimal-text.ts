/**
 * Exact comparison of decimal numbers written as text (`-12`, `3.50`, `1e3`), as model filters
 * need them: an int8 or numeric column arrives as text with more digits than a double holds
 * (`"12345678901234567"` is not `12345678901234568`, `"0.10000000000000000001"` is not `0.1`).
 *
 * A number is kept as its significant digits and the power of ten of its first digit, so two
 * numbers compare by sign, then magnitude, then digits — no arithmetic, no rounding, and an
 * exponent such as `1e999999` costs nothing.
 */

/** A finite decimal, `0.{digits} × 10^magnitude` with the sign; zero has no digits. */
export interface DecimalText {
  readonly negative: boolean;
  /** Significant digits, without leading or trailing zeros; `''` for zero. */
  readonly digits: string;
  /** The power of ten just above the first significant digit (123.4 → 3, 0.05 → -1). */
  readonly magnitude: number;
}

/** A decimal number: an optional minus, digits without a leading zero, a fraction, an exponent. */
export const DECIMAL_NUMBER = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([-+]?[0-9]+))?$/;

const ZERO = 0x30;

/** The number in `text`, or undefined when it is not one ({@link DECIMAL_NUMBER}). */
export function decimalOf(text: string): DecimalText | undefined {
  const match = DECIMAL_NUMBER.exec(text);
  if (match === null) return undefined;
  const whole = match[2] ?? '';
  const all = whole + (match[3] ?? '');
  const first = all.search(/[1-9]/);
  if (first < 0) return { negative: false, digits: '', magnitude: 0 };
  // Trailing zeros found by a loop: `/0+$/` retries from every zero of a run that does not end the
  // text, quadratic in its length (a numeric of 100,000 digits with zeros inside took 5 s).
  let end = all.length;
  while (all.charCodeAt(end - 1) === ZERO) end--;
  const exponent = match[4] === undefined ? 0 : Number(match[4]);
  return {
    negative: match[1] === '-',
    digits: all.slice(first, end),
    magnitude: whole.length - first + exponent,
  };
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`. */
export function compareDecimals(a: DecimalText, b: DecimalText): number {
  const signA = a.digits === '' ? 0 : a.negative ? -1 : 1;
  const signB = b.digits === '' ? 0 : b.negative ? -1 : 1;
  if (signA !== signB || signA === 0) return Math.sign(signA - signB);
  let order = a.magnitude === b.magnitude ? 0 : a.magnitude > b.magnitude ? 1 : -1;
  // Same magnitude: digit strings compare as the fractions they are ("12" < "123", 0.12 < 0.123).
  if (order === 0) order = a.digits === b.digits ? 0 : a.digits > b.digits ? 1 : -1;
  return signA * order;
}
