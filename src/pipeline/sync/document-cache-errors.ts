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

export function isDocumentCacheUnavailable(error: unknown): error is DocumentCacheUnavailableError {
  return error instanceof DocumentCacheUnavailableError;
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
