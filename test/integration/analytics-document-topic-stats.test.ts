/**
 * A service's documents are counted under one row, `sync.{service}.doc.*` (each document is a
 * stream of its own, and a row per document ever changed would be kept for years): `topicStats`
 * answers for that name, and for one document's topic with that row's counts.
 */
import { describe, expect, it } from 'vitest';
import { ANALYTICS_SYSTEM_TOPIC } from '../../src/pipeline/events/analytics-event.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { statsUpdateOf } from '../../src/resolvers/analytics.ts';
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

describe('statsUpdates of sync documents', () => {
  it("counts a document topic's minute from its service's row", () => {
    const row = { topic: 'sync.notes.doc.*', tenant: 'default', eventsDatabase: 0, eventsSync: 7, eventsSocket: 0, eventsSystem: 0, deliveries: 12, bytes: 900, webhookDelivered: 0, webhookFailed: 0, resyncs: 0, latency: [] };
    const event = { source: 'system', topic: ANALYTICS_SYSTEM_TOPIC, payload: { startTime: '2026-01-01T00:00:00.000Z', topics: [row] } } as unknown as RealtimeEvent;
    for (const topic of ['sync.notes.doc.abc', 'sync.notes.doc.*']) {
      expect(statsUpdateOf(event, { topic })).toMatchObject({ topic: 'sync.notes.doc.*', count: 7, deliveries: 12 });
    }
  });
});
