import { ErrorCode, TributaryError } from '../../errors.ts';

/** The errors of the document cache's Redis commands (`document-cache.ts`, `unpublished-redis.ts`). */

/**
 * UNAVAILABLE because Redis failed a cache command (unreachable, timed out, refused) — not the
 * database: a reader in sync durability can then ask Postgres instead (`cached-documents.ts`).
 */
class DocumentCacheUnavailableError extends TributaryError {
  constructor(cause: unknown) {
    super(ErrorCode.UNAVAILABLE, 'The document cache is unavailable right now; retry shortly', { cause });
  }
}

/**
 * A write script (WRITE) that failed after it was sent, with no answer: its reply timed out or its
 * connection closed (the server's connections never send a command again). Redis may have run it —
 * its writer looks for it by `token` (`DocumentCache.confirm`) before answering anything.
 */
class WriteOutcomeUnknownError extends DocumentCacheUnavailableError {
  readonly token: string;

  constructor(cause: unknown, token: string) {
    super(cause);
    this.token = token;
  }
}

export function isDocumentCacheUnavailable(error: unknown): error is DocumentCacheUnavailableError {
  return error instanceof DocumentCacheUnavailableError;
}

export function isWriteOutcomeUnknown(error: unknown): error is WriteOutcomeUnknownError {
  return error instanceof WriteOutcomeUnknownError;
}

/** Runs a cache command; a failure that is not already a client-facing error becomes DocumentCacheUnavailableError. */
export async function unavailableOnFailure<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof TributaryError) throw error;
    throw new DocumentCacheUnavailableError(error);
  }
}

/**
 * Runs the write script sent with `token`; a failure becomes WriteOutcomeUnknownError unless it
 * is known to have changed nothing: Redis's own error reply (a script that fails, or is refused
 * for memory, before its first write — Redis keeps no partial script under an OOM refusal), or a
 * command refused before it was sent (no connection: ioredis's offline queue is off).
 */
export async function writeOnFailure<T>(work: Promise<T>, token: string): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof TributaryError) throw error;
    if (neverRan(error)) throw new DocumentCacheUnavailableError(error);
    throw new WriteOutcomeUnknownError(error, token);
  }
}

function neverRan(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // ioredis, `enableOfflineQueue: false` and no connection: rejected before it was written.
  return error.name === 'ReplyError' || error.message.startsWith("Stream isn't writeable");
}
