/**
 * `updateDocument` does not send again a write the server answered UNAVAILABLE with
 * `extensions.saved: true` (the change is saved) or `saved: null` (the server cannot tell): every
 * retry under its idempotency key would be answered the same — ten sends and ~13 s before the
 * caller heard the first answer.
 */
import { describe, expect, it } from 'vitest';
import { documentWrites } from '../../src/document-writes.ts';
import { TributaryRequestError } from '../../src/errors.ts';

describe('updateDocument and a saved change', () => {
  it.each([
    ['saved', { saved: true, revision: 4 }],
    ['maybe saved', { saved: null }],
  ])('rejects at once with the %s answer, sent once', async (_, answered) => {
    let writes = 0;
    const doc = { service: 's', id: 'd', revision: 3, data: { votes: 1 }, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };
    const send = (document: { definitions: readonly { name?: { value: string } }[] }) => {
      if (document.definitions.some((definition) => definition.name?.value === 'TributaryGetDocument')) return Promise.resolve({ document: doc });
      writes += 1;
      return Promise.reject(new TributaryRequestError([{ message: 'The change was saved as revision 4 in the cache but not yet in the database', extensions: { code: 'UNAVAILABLE', ...answered } }]));
    };
    const api = documentWrites((run) => run(send as never, new AbortController().signal));
    const failure = await api.updateDocument('s', 'd', (data: { votes: number }) => ({ votes: data.votes + 1 })).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(TributaryRequestError);
    expect((failure as TributaryRequestError).errors[0]?.extensions).toMatchObject(answered);
    expect(writes).toBe(1);
  });
});
