/**
 * A service's documents are counted under one row, `sync.{service}.doc.*` (each document is a
 * stream of its own, and a row per document ever changed would be kept for years): `topicStats`
 * answers for that name, and for one document's topic with that row's counts.
 */
import { describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';

const STATS = 'query($topic: String!, $from: DateTime!, $to: DateTime!) { topicStats(topic: $topic, granularity: MINUTE, from: $from, to: $to) { count } }';

describe('topicStats of sync documents', () => {
  it('answers for sync.{service}.doc.* and for a document topic alike', async () => {
    const server = await startTestServer();
    const created = await postGraphQL(server.graphqlUrl, { query: 'mutation { createDocument(service: "notes", id: "n1", data: { text: "hi" }) { revision } }' });
    expect(created.body).toEqual({ data: { createDocument: { revision: 1 } } });
    const now = Date.now();
    const window = { from: new Date(now - 120_000).toISOString(), to: new Date(now + 60_000).toISOString() };
    const ask = async (topic: string) => (await postGraphQL(server.graphqlUrl, { query: STATS, variables: { topic, ...window } })).body;
    const folded = await ask('sync.notes.doc.*');
    expect(folded).toMatchObject({ data: { topicStats: expect.any(Array) as unknown } });
    expect(await ask('sync.notes.doc.n1')).toEqual(folded);
    // Not a way around the names' rules: only a `.doc.*` ending is taken.
    expect(await ask('sync.notes.*')).toMatchObject({ errors: [{ extensions: { code: 'BAD_USER_INPUT' } }] });
  });
});
