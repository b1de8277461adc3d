import { randomUUID } from 'node:crypto';
import { ErrorCode, InternalError, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { JsonObject } from '../events/json.ts';
import { fingerprintOf, type PublishKeys, type RememberedRecord } from '../idempotency/publish-keys.ts';
import { isOutcomeUnknown, outcomeUnknown, savedButUnavailable, savedRevisionOf, type SyncDocument } from './documents.ts';

/**
 * Document writes under an idempotency key (`createDocument(idempotencyKey:)` and the others):
 * the keys and store of `publish` (`idempotency/publish-keys.ts`) — per scope, for
 * EVENT_PUBLISH_KEY_TTL_SECONDS, in Redis when there is one, else in this process's memory — with
 * records of their own (`answered`).
 *
 * A first try claims the key, makes the write and remembers what it answered. A later try with the
 * key makes no write and answers what the first answered:
 * - a document: the first answer's `service`, `id`, `revision`, `createdAt` and `updatedAt`, and its
 *   `data` as `dataOf` gives it back — the record keeps no data (a key would hold up to a document's
 *   size in Redis for a day, and a deleted document's content must not stay anywhere);
 * - UNAVAILABLE with `saved: true` and the revision, when the first try's change was saved but not
 *   finished (`savedButUnavailable`): the change is there, and goes out when it can;
 * - UNAVAILABLE with `saved: null`, when whether the first try's change was saved could not be told
 *   (`outcomeUnknown`, `lost-writes.ts`): the key is kept, so that a retry cannot make it twice.
 * A first try that saved nothing (refused, or failed before its change was saved) frees the key:
 * its retry is a first try again. The same key with other arguments is CONFLICT (`field:
 * idempotencyKey`), as is a try while another holds the key (`inFlight: true`: retry shortly).
 *
 * Best effort where the store fails or forgets, as for `publish`: a record not remembered (Redis
 * away just then), forgotten (its lifetime over, a restart without Redis) or held longer than the
 * in-flight time by its first try lets a retry make the write again — a second revision, unless it
 * carries `expectedRevision`, which then refuses it (CONFLICT).
 */

/** What a keyed write answered, as its record keeps it (JSON). */
type Answer =
  | { readonly outcome: 'written'; readonly service: string; readonly id: string; readonly revision: number; readonly createdAt: string; readonly updatedAt: string }
  | { readonly outcome: 'saved'; readonly revision: number; readonly message: string }
  | { readonly outcome: 'unknown'; readonly message: string };

/** The first answer's document as a retry gets it back, without its data. */
export type AnsweredDocument = Omit<SyncDocument, 'data'>;

export interface KeyedWrite {
  /** `keyId(scope, idempotencyKey)`. */
  readonly keyId: string;
  /** `writeFingerprint(...)` of the request. */
  readonly fingerprint: string;
  /** Makes the write: the first try. */
  readonly write: () => Promise<SyncDocument>;
  /** A retry's `data`, given the first answer's document. */
  readonly dataOf: (answered: AnsweredDocument) => Promise<JsonObject>;
}

export interface KeyedWriteDeps {
  readonly keys: PublishKeys;
  readonly logger: Logger;
}

/**
 * What makes two document writes the same request: the mutation, the service, the id as sent (none
 * for a create that lets the server choose it: its retry gets the first one's), the data or patch
 * (keys in any order) and the expected revision.
 */
export function writeFingerprint(
  mutation: 'create' | 'replace' | 'merge' | 'delete',
  service: string,
  sentId: string | undefined,
  body: JsonObject | undefined,
  expectedRevision: number | undefined,
): string {
  return fingerprintOf(['document', mutation, service, sentId ?? null, body ?? null, expectedRevision ?? null]);
}

/** Makes a keyed write once; see the module's comment. */
export async function writeOnce(deps: KeyedWriteDeps, keyed: KeyedWrite): Promise<SyncDocument> {
  const { keys } = deps;
  const { keyId, fingerprint } = keyed;
  const token = randomUUID();
  const claim = await keys.claim(keyId, fingerprint, token);
  if (!claim.claimed) {
    const { record } = claim;
    if (record.fingerprint !== fingerprint || record.state === 'placed' || record.state === 'done') {
      throw new TributaryError(ErrorCode.CONFLICT, 'This idempotency key was used for another request (another document, mutation, data or expectedRevision, or a publish); use a new key for a new write', {
        details: { field: 'idempotencyKey' },
      });
    }
    if (record.state === 'in-flight') {
      throw new TributaryError(ErrorCode.CONFLICT, 'A write with this idempotency key is being made, or its try failed moments ago; retry shortly', {
        details: { field: 'idempotencyKey', inFlight: true },
      });
    }
    const answer = answerOf(keyId, record.answer);
    if (answer.outcome === 'saved') throw savedButUnavailable(answer.revision, answer.message);
    if (answer.outcome === 'unknown') throw outcomeUnknown(answer.message);
    const answered: AnsweredDocument = {
      service: answer.service,
      id: answer.id,
      revision: answer.revision,
      createdAt: new Date(answer.createdAt),
      updatedAt: new Date(answer.updatedAt),
    };
    return { ...answered, data: await keyed.dataOf(answered) };
  }

  try {
    const document = await keyed.write();
    const { service, id, revision, createdAt, updatedAt } = document;
    await remember(deps, keyId, { state: 'answered', fingerprint, answer: { outcome: 'written', service, id, revision, createdAt: createdAt.toISOString(), updatedAt: updatedAt.toISOString() } });
    return document;
  } catch (error) {
    const revision = savedRevisionOf(error);
    if (revision !== undefined) {
      await remember(deps, keyId, { state: 'answered', fingerprint, answer: { outcome: 'saved', revision, message: (error as Error).message } });
    } else if (isOutcomeUnknown(error)) {
      // Perhaps saved: the key stays taken, answering this, so that a retry cannot save it twice.
      await remember(deps, keyId, { state: 'answered', fingerprint, answer: { outcome: 'unknown', message: (error as Error).message } });
    } else {
      // Nothing saved: the key is free for the retry.
      await keys.release(keyId, fingerprint, token).catch((releaseError: unknown) => deps.logger.warn({ err: releaseError }, 'document write key not released; it frees itself when its try runs out'));
    }
    throw error;
  }
}

/** Remembers what the write answered. Its failure does not fail the write, which is made: see the module's comment. */
async function remember(deps: KeyedWriteDeps, keyId: string, record: RememberedRecord): Promise<void> {
  await deps.keys.remember(keyId, record).catch((error: unknown) => deps.logger.warn({ err: error }, 'document write key not remembered'));
}

/** A record's answer, checked: one that is not (another version's) is a fault, as a corrupt publish key is. */
function answerOf(keyId: string, stored: JsonObject): Answer {
  const { outcome, revision } = stored;
  const text = (name: string) => typeof stored[name] === 'string';
  if (outcome === 'unknown' && text('message')) return stored as unknown as Answer;
  if (typeof revision === 'number') {
    if (outcome === 'saved' && text('message')) return stored as unknown as Answer;
    if (outcome === 'written' && text('service') && text('id') && text('createdAt') && text('updatedAt')) return stored as unknown as Answer;
  }
  throw new InternalError('PUBLISH_KEY_RECORD_CORRUPT', `the record of idempotency key ${keyId} is not a document write's`);
}
