/**
 * The cursors of a model snapshot (`records`), and how `changes(after: <snapshot cursor>)` joins
 * the stream without a race:
 *
 * - **Snapshot cursor** (`records.cursor`, `s1.…`): the model stream's log position read *before*
 *   the snapshot was taken, and the snapshot's window (`wal/snapshot-window.ts`: which
 *   transactions it saw committed, up to the WAL position read after it). Every change the
 *   snapshot misses committed after that log position was read, so it is in the log after it.
 *   Changes between that position and the snapshot that it already reflects are recognised by
 *   their transaction (`metadata.transaction`: xid and commit LSN) and skipped, so a client
 *   never sees a row go back to an older state. A change committed at or after the window's WAL
 *   position is delivered without looking at its xid (so xid wraparound cannot confuse it).
 * - **Page cursor** (`pageInfo.endCursor`, `p1.…`): the last key read and the first page's
 *   snapshot cursor, so every page of one listing answers the same `cursor` and is read as the
 *   first page's snapshot would (see `model-records.ts`).
 *
 * Both are opaque to clients (a prefix and base64url JSON) and bounded in size. A cursor a client
 * forges can only make its own subscription skip or repeat its own tenant's changes: the stream,
 * tenant and permission still come from the token.
 */
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { resyncRequired } from '../log/cursor.ts';
import type { Admission } from '../dispatch/subscription-contract.ts';
import { parseLsn } from './wal/lsn.ts';
import { sawCommitted, type SnapshotWindow } from './wal/snapshot-window.ts';

export interface ModelSnapshot {
  /** The model stream's log cursor read before the snapshot: `changes` resumes after it. */
  readonly after: string;
  /** The source database's id (`WalTransaction.source`). */
  readonly source: string;
  readonly window: SnapshotWindow;
}

export interface PageCursor {
  /** The model listed (absent in cursors of earlier versions): a cursor is good for its own model's listing only. */
  readonly model?: string;
  /** The ordering key of the last row read, each column as Postgres prints it. */
  readonly key: readonly string[];
  /** The first page's snapshot cursor. */
  readonly snapshot: string;
}

/** Transactions in progress a snapshot may list (`max_connections` plus prepared ones stays far below). */
export const MAX_SNAPSHOT_IN_PROGRESS = 2000;
const SNAPSHOT_PREFIX = 's1.';
const PAGE_PREFIX = 'p1.';
/** Room for MAX_SNAPSHOT_IN_PROGRESS ten-digit xids, base64url-encoded. */
const MAX_SNAPSHOT_CURSOR_LENGTH = 40_000;
const MAX_KEY_TEXT = 2000;

export function isSnapshotCursor(cursor: string): boolean {
  return cursor.startsWith(SNAPSHOT_PREFIX);
}

export function encodeSnapshotCursor(snapshot: ModelSnapshot): string {
  const { window } = snapshot;
  const body = { a: snapshot.after, s: snapshot.source, x: window.xmax, p: [...window.inProgress], l: window.endLsn.toString() };
  return SNAPSHOT_PREFIX + Buffer.from(JSON.stringify(body)).toString('base64url');
}

/** @throws TributaryError RESYNC_REQUIRED for anything that is not a snapshot cursor this server made. */
export function decodeSnapshotCursor(cursor: string): ModelSnapshot {
  const body = cursor.length <= MAX_SNAPSHOT_CURSOR_LENGTH && isSnapshotCursor(cursor) ? parseBody(cursor.slice(SNAPSHOT_PREFIX.length)) : undefined;
  const { a, s, x, p, l } = (body ?? {}) as Record<string, unknown>;
  const valid =
    typeof a === 'string' &&
    typeof s === 'string' &&
    isXid(x) &&
    Array.isArray(p) &&
    p.length <= MAX_SNAPSHOT_IN_PROGRESS &&
    p.every(isXid) &&
    typeof l === 'string' &&
    /^\d{1,20}$/.test(l);
  if (!valid) throw resyncRequired('unknown snapshot cursor');
  return { after: a, source: s, window: { xmax: x, inProgress: new Set(p), endLsn: BigInt(l) } };
}

export function encodePageCursor(page: PageCursor): string {
  return PAGE_PREFIX + Buffer.from(JSON.stringify({ m: page.model, k: page.key, s: page.snapshot })).toString('base64url');
}

/** @throws TributaryError BAD_USER_INPUT (`field: after`) for anything that is not a page cursor this server made. */
export function decodePageCursor(cursor: string): PageCursor {
  const body = cursor.startsWith(PAGE_PREFIX) && cursor.length <= MAX_SNAPSHOT_CURSOR_LENGTH * 2 ? parseBody(cursor.slice(PAGE_PREFIX.length)) : undefined;
  const { m, k, s } = (body ?? {}) as Record<string, unknown>;
  if (!Array.isArray(k) || k.length === 0 || !k.every((part) => typeof part === 'string' && part.length <= MAX_KEY_TEXT) || typeof s !== 'string' || (m !== undefined && typeof m !== 'string')) {
    throw invalidPageCursor();
  }
  try {
    decodeSnapshotCursor(s);
  } catch {
    // Its snapshot is only checked for shape: one that fails was never made by this server, so
    // the whole `after` is bad input, not a history to resync from.
    throw invalidPageCursor();
  }
  return { ...(m !== undefined && { model: m }), key: k as string[], snapshot: s };
}

/** A page cursor that is not the previous page's of this listing (made up, or of another model). */
export function invalidPageCursor(): TributaryError {
  return new TributaryError(ErrorCode.BAD_USER_INPUT, 'Invalid "after": pass the pageInfo.endCursor of the previous page of the same model', { details: { field: 'after' } });
}

/**
 * The row version a later page reads is the one the first page's snapshot saw: written by a
 * transaction that snapshot saw committed (or frozen). A version written later is left out of
 * the page: the stream delivers its changes after the snapshot cursor, in order.
 *
 * The later page's own snapshot sees the version, so its `xmin` precedes that snapshot's xmax
 * (`currentXmax`): it was written after the first snapshot exactly when it lies in
 * [window xmax, current xmax) modulo 2^32, or was in progress then. Any other xmin is older. (Asking
 * `sawCommitted` alone would compare with the window modulo 2^32, and take a version frozen more
 * than 2^31 transactions ago — freezing keeps its xmin — for one written after the window.)
 */
export function snapshotSawVersion(window: SnapshotWindow, xmin: number, currentXmax: number): boolean {
  // 1 and 2 are the bootstrap and frozen xids: visible to every snapshot.
  if (xmin < 3) return true;
  if (((xmin - window.xmax) >>> 0) < ((currentXmax - window.xmax) >>> 0)) return false;
  return !window.inProgress.has(xmin);
}

/**
 * The per-subscriber admission of `changes(after: <snapshot cursor>)`: skips a change the
 * snapshot already reflects, delivers everything else. Each event is judged on its own: a stream
 * keeps commit order per entity only (the Redis log may place two entities' events in either
 * order), so no event's position says anything about the next one's.
 */
export function snapshotAdmission(snapshot: ModelSnapshot): Admission {
  // Consecutive events often share a transaction: parse its LSN once.
  let lastLsnText = '';
  let lastLsn = 0n;
  return (event: RealtimeEvent) => {
    const transaction = event.metadata.transaction;
    if (!transaction || transaction.source !== snapshot.source) return 'deliver';
    if (transaction.commitLsn !== lastLsnText) {
      lastLsn = parseLsn(transaction.commitLsn);
      lastLsnText = transaction.commitLsn;
    }
    // Committed after the window's WAL position: later than anything the snapshot saw.
    if (lastLsn >= snapshot.window.endLsn) return 'deliver';
    return sawCommitted(snapshot.window, transaction.xid) ? 'skip' : 'deliver';
  };
}

function parseBody(encoded: string): unknown {
  try {
    return JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isXid(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}
