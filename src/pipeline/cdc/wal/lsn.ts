/**
 * Postgres log sequence numbers (LSN): a 64-bit byte position in the WAL, written `X/Y` (two hex
 * halves). Arithmetic is done on `bigint`; text is always the padded `XXXXXXXX/XXXXXXXX` form so
 * that two LSN strings compare in the same order as the positions (Postgres accepts both forms).
 */
import { InternalError } from '../../../errors.ts';

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const MAX_LSN = (1n << 64n) - 1n;

/**
 * The position of `X/Y`; throws on anything else. Every LSN parsed here comes from Postgres (the
 * stream, the slot's catalog row), so a malformed one is a fault (`WAL_LSN`), not a caller's input.
 */
export function parseLsn(text: string): bigint {
  const match = LSN_PATTERN.exec(text);
  if (!match) throw new InternalError('WAL_LSN', `"${text}" is not an LSN (expected X/Y in hex)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** `XXXXXXXX/XXXXXXXX`, upper case. */
export function formatLsn(position: bigint): string {
  if (position < 0n || position > MAX_LSN) {
    throw new InternalError('WAL_LSN', `LSN position ${position} is outside 0 … 2^64-1`);
  }
  const high = (position >> 32n).toString(16).toUpperCase().padStart(8, '0');
  const low = (position & 0xffff_ffffn).toString(16).toUpperCase().padStart(8, '0');
  return `${high}/${low}`;
}

/** The same LSN in the padded form, e.g. `0/16B3748` → `00000000/016B3748`. */
export function normalizeLsn(text: string): string {
  return formatLsn(parseLsn(text));
}

/** Negative when `a` is before `b`, 0 when equal, positive when after. */
export function compareLsn(a: string, b: string): number {
  const difference = parseLsn(a) - parseLsn(b);
  return difference === 0n ? 0 : difference < 0n ? -1 : 1;
}

/** Bytes of WAL from `from` to `to` (negative when `to` is before `from`). */
export function lsnBytesBetween(from: string, to: string): bigint {
  return parseLsn(to) - parseLsn(from);
}
