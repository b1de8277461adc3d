/**
 * A record's value in the forms a model filter's clause compares it in (`model-filter.ts`), each
 * read once and then compared with every operand of the clause.
 *
 * Read per operand, a value cost the clause's operand count times its own length: an in-list of
 * 24 decimals against a numeric of 100,000 digits took 24 regex passes and copies of those digits
 * (~7 ms per row). Nothing bounds a row value's length before it is matched: CDC rows carry
 * numerics as text (up to 131,072 digits before the point and 16,383 after) and text of any length,
 * and neither the WAL reader, the event log nor `records` cuts them. So:
 *
 * - a short value (non-strings, and strings of at most {@link SHARED_TEXT_LENGTH} characters) is
 *   read at most once per clause evaluation, into one holder reused by every evaluation — nothing
 *   allocated, and it costs no more than the clause's operands do;
 * - a longer string is read at most once per record and column: every clause and every filter
 *   judging the same record shares its forms (the dispatcher matches one event against its
 *   cohorts one after the other, `fan-out.ts`, so the filters of a whole budget
 *   (WS_MAX_FILTER_BYTES_PER_SUBJECT) read a long value once per event, not once each). Only the
 *   last record's forms are kept, and that record only weakly: memory stays one row's long values.
 *
 * Matching is synchronous and never re-entered, so the holder and the last record's forms cannot be
 * seen half-filled.
 */
import { decimalOf, type DecimalText } from './decimal-text.ts';
import { DECIMAL_TEXT } from './json-compare.ts';

/** Decimals this long (sign and point included) compare exactly as doubles: no allocation. */
export const SHORT_DECIMAL = 15;
/** An ISO date or date-time, as CDC rows carry dates and timestamps (`cdc/row-values.ts`). */
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/;
/** Dates and timestamps Postgres prints as these are after and before every other (`row-values.ts`). */
const INFINITE_TIMES: ReadonlyMap<string, number> = new Map([
  ['infinity', Infinity],
  ['-infinity', -Infinity],
]);
/**
 * Strings longer than this are read once per record rather than once per clause: below it a read
 * costs less than finding it again, and no more than comparing with one 500-character operand.
 */
const SHARED_TEXT_LENGTH = 64;

/** A record value with its forms, each read on first use (`undefined` until then). */
export interface ValueForms {
  value: unknown;
  /** A string's number when it is a short decimal ({@link isShortDecimal}); NaN otherwise. */
  shortNumber: number | undefined;
  /** The decimal a string is, or a number or bigint prints as; null when there is none. */
  decimal: DecimalText | null | undefined;
  /** A string's instant when it is an ISO date or time, or ±infinity; NaN otherwise. */
  time: number | undefined;
}

const holder: ValueForms = { value: undefined, shortNumber: undefined, decimal: undefined, time: undefined };
/** The long strings of the last record read, by column. */
let lastRecord: WeakRef<object> | undefined;
let lastForms = new Map<string, ValueForms>();

/** `value`, read from `record[column]`, ready to be compared with a clause's operands. */
export function valueFormsOf(record: object, column: string, value: unknown): ValueForms {
  if (typeof value !== 'string' || value.length <= SHARED_TEXT_LENGTH) return reset(holder, value);
  if (lastRecord?.deref() !== record) {
    lastRecord = new WeakRef(record);
    lastForms = new Map();
  }
  let forms = lastForms.get(column);
  // A record changed since (the same object, another value) is read again.
  if (forms?.value !== value) lastForms.set(column, (forms = reset({ value, shortNumber: undefined, decimal: undefined, time: undefined }, value)));
  return forms;
}

export function isShortDecimal(text: string): boolean {
  return text.length <= SHORT_DECIMAL && DECIMAL_TEXT.test(text);
}

/** The string's number when it is a short decimal; NaN otherwise (or when the value is no string). */
export function shortNumberOf(forms: ValueForms): number {
  if (forms.shortNumber === undefined) {
    const value = forms.value;
    forms.shortNumber = typeof value === 'string' && isShortDecimal(value) ? Number(value) : NaN;
  }
  return forms.shortNumber;
}

/** The decimal the value is (a string) or prints as (a number or bigint: `0.1` is 0.1, not 0.1000000000000000055…). */
export function decimalOfValue(forms: ValueForms): DecimalText | undefined {
  if (forms.decimal === undefined) {
    const value = forms.value;
    const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'bigint' ? String(value) : undefined;
    forms.decimal = (text === undefined ? undefined : decimalOf(text)) ?? null;
  }
  return forms.decimal ?? undefined;
}

/** A string's instant when it is an ISO date or time (or ±infinity); NaN otherwise. */
export function timeOfValue(forms: ValueForms): number {
  if (forms.time === undefined) {
    const value = forms.value;
    forms.time = typeof value !== 'string' ? NaN : ISO_TIME.test(value) ? Date.parse(value) : (INFINITE_TIMES.get(value) ?? NaN);
  }
  return forms.time;
}

function reset(forms: ValueForms, value: unknown): ValueForms {
  forms.value = value;
  forms.shortNumber = undefined;
  forms.decimal = undefined;
  forms.time = undefined;
  return forms;
}
