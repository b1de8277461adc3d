import { ErrorCode, TributaryError } from '../../errors.ts';
import { randomString } from '../random-pool.ts';

/**
 * Cursors are opaque to clients: base64url of `<epoch>:<position>`. The epoch is random per
 * stream, so a cursor from another stream, tenant or history fails the epoch check rather than
 * pointing somewhere plausible. Positions are `<n>` or `<ms>-<seq>` (Redis stream ids).
 */
export interface CursorParts {
  readonly epoch: string;
  readonly position: string;
}

const PARTS = /^([0-9a-f]{8,64}):(\d{1,20}(?:-\d{1,20})?)$/;
const MAX_CURSOR_LENGTH = 200;
/** Each part of a position is at most a u64, as Redis stream ids are (XRANGE refuses more). */
const MAX_PART = 2n ** 64n - 1n;

/** A new random epoch (an append offers one with every event, for a stream that has none yet). */
export function newEpoch(): string {
  return randomString(8, 'hex');
}

export function encodeCursor(epoch: string, position: string): string {
  return Buffer.from(`${epoch}:${position}`).toString('base64url');
}

/** @throws TributaryError RESYNC_REQUIRED for anything that is not a cursor this server made. */
export function decodeCursor(cursor: string): CursorParts {
  const match = cursor.length <= MAX_CURSOR_LENGTH ? PARTS.exec(Buffer.from(cursor, 'base64url').toString('latin1')) : null;
  if (!match?.[1] || !match[2] || match[2].split('-').some((part) => BigInt(part) > MAX_PART)) throw resyncRequired('unknown cursor');
  return { epoch: match[1], position: match[2] };
}

/** Orders positions of one stream: `<ms>-<seq>` by both parts, `<n>` as `<n>-0`. */
export function comparePositions(a: string, b: string): number {
  const [aMajor, aMinor] = splitPosition(a);
  const [bMajor, bMinor] = splitPosition(b);
  return aMajor === bMajor ? Math.sign(aMinor - bMinor) : aMajor < bMajor ? -1 : 1;
}

function splitPosition(position: string): [bigint, number] {
  const dash = position.indexOf('-');
  return dash === -1 ? [BigInt(position), 0] : [BigInt(position.slice(0, dash)), Number(position.slice(dash + 1))];
}

/**
 * The refusal of a cursor, for every stream alike (a topic's `events`, a model's `changes`, a
 * `document`). Where it is made (the log, the catch-up, the fan-out) the field subscribed to is
 * not known, so the message names each recipe by its field: a topic is subscribed to again
 * without `after` (from now on); a model's state is refetched with `records`, whose cursor
 * `changes(after:)` joins without a gap or a duplicate.
 *
 * A cursor of another topic or tenant cannot be told from one of a replaced history: the cursor
 * holds only its stream's epoch (random) and a position, and the logs keep no index from epochs
 * to streams — nor should they answer, for a cursor, whether some other tenant's stream has it.
 */
/**
 * A resume whose cursor's epoch is not its stream's: another topic's or tenant's cursor, or one
 * of a history the stream has since replaced — which of them cannot be told (see above).
 */
export const NOT_THIS_HISTORY = "the cursor is not of this stream's current history: another topic's or tenant's, or of a history since replaced";

export function resyncRequired(reason: string): TributaryError {
  return new TributaryError(
    ErrorCode.RESYNC_REQUIRED,
    `Cannot resume from this cursor (${reason}): refetch your state and subscribe again — for \`events\`, without "after"; for \`changes\`, from the cursor a new \`records\` read gives`,
    { details: { reason } },
  );
}
