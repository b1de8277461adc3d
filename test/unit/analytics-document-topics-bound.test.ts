/**
 * A sync document's stream (`sync.{service}.doc.{id}`) is counted as its service's row,
 * `sync.{service}.doc.*`, when it is recorded — not only when the minute is flushed: admitted one
 * by one, a tenant's documents used up the minute's bound of topics and pushed its real topics
 * into the overflow row.
 */
import { describe, expect, it } from 'vitest';
import { createAnalyticsRecorder } from '../../src/pipeline/analytics/recorder.ts';
import { statsRowsOf } from '../../src/pipeline/analytics/stats-store.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

describe('analytics recorder and sync documents', () => {
  it("counts a tenant's documents as one topic of its bound, so its other topics keep rows of their own", () => {
    const scope = { app: 'shop', env: 'prod', tenant: 'acme' };
    // 100 topics a minute, 50 per tenant.
    const recorder = createAnalyticsRecorder({ maxTopicsPerMinute: 100 });
    for (let i = 0; i < 60; i += 1) recorder.routed(streamOf(scope, `sync.notes.doc.n${i}`).key, 'sync');
    recorder.routed(streamOf(scope, 'orders.status').key, 'socket');
    const [minute] = recorder.drain();
    const rows = statsRowsOf(minute!.topics).map((row) => [row.topic, row.counts.eventsSync + row.counts.eventsSocket]);
    expect(rows.sort()).toEqual([
      ['orders.status', 1],
      ['sync.notes.doc.*', 60],
    ]);
    expect(minute!.topics.size).toBe(2);
  });
});
