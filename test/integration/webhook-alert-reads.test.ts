/**
 * What the webhook alert rules read every evaluation, on a real Postgres: figures that do not grow
 * with the traffic (migrations/0021).
 *
 * The failure rate comes from the attempts' tallies: each worker process counts its attempts per
 * endpoint and adds them to one row per endpoint and 10-second span, which every process adds to.
 * A write that fails keeps its counts for the next; close writes what is left; spans before the
 * window are not read. The dead letters are read through an index of dead letters alone — not
 * every delivery finished in the window — and so is the admin's list of an endpoint's dead letters.
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { webhookDeadLettersRule, webhookFailureRateRule } from '../../src/pipeline/alerts/rules/webhook-rules.ts';
import { createAttemptTallies } from '../../src/pipeline/webhooks/attempt-tallies.ts';
import { listDeliveries } from '../../src/pipeline/webhooks/delivery-log.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { databaseOn, explainingClient } from '../helpers/single-connection.ts';

const logger = createLogger({ level: 'silent' });
/** Far beyond the test: every write here is the test's own. */
const NEVER_MS = 600_000;
const WINDOW_MS = 300_000;
const THRESHOLDS = { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 };

/** A platform database of the test's own, disposed after it. */
async function freshFixture() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  return fixture;
}

/** The failure-rate rule's reading of each endpoint, as `[endpointId, verdict]`. */
async function failureRates(db: Database) {
  const readings = await webhookFailureRateRule(db, THRESHOLDS).read({ windowMs: WINDOW_MS });
  return new Map(readings.map((reading) => [reading.subject.replace('endpoint:', ''), reading.verdict]));
}

describe('the webhook failure-rate alert reads the attempts’ tallies', () => {
  it('adds every process’s counts per endpoint, keeps what a failed write held, writes the rest at close, and leaves out spans before the window', async () => {
    const fixture = await freshFixture();
    const { db } = fixture;
    const failing = await fixture.endpoint('failing');
    const healthy = await fixture.endpoint('healthy');
    const first = createAttemptTallies({ db, logger, flushMs: NEVER_MS });
    const second = createAttemptTallies({ db, logger, flushMs: NEVER_MS });
    // Spans before the window: not read — one that ended before it began (15 s), nor one long before.
    // A span that began 5 s before the window ends within it: read.
    const windowSeconds = WINDOW_MS / 1000;
    await db.query(
      `INSERT INTO webhook_attempt_tallies (endpoint_id, span_start, attempts, failures) VALUES
         ($1, now() - interval '1 hour', 1000, 0), ($1, now() - make_interval(secs => $2 + 15), 1000, 0), ($3, now() - make_interval(secs => $2 + 5), 1, 0)`,
      [failing, windowSeconds, healthy],
    );

    // Two processes' attempts to one endpoint: three failures of four.
    first.count(failing, true);
    first.count(failing, true);
    second.count(failing, true);
    second.count(failing, false);
    await Promise.all([first.flush(), second.flush()]);
    let rates = await failureRates(db);
    expect(rates.get(failing)).toMatchObject({ kind: 'bad', severity: 'critical', value: 0.75 });
    // One attempt (the span at the window's start) is below the minimum sample.
    expect(rates.get(healthy)).toMatchObject({ kind: 'unknown', reason: expect.stringMatching(/^1 attempts/) as unknown });

    // The table away for a moment: the write fails, and its counts go with the next one.
    for (let attempt = 0; attempt < 4; attempt += 1) first.count(healthy, false);
    await db.query('ALTER TABLE webhook_attempt_tallies RENAME TO webhook_attempt_tallies_away');
    try {
      await expect(first.flush()).rejects.toThrow(/webhook_attempt_tallies/);
    } finally {
      await db.query('ALTER TABLE webhook_attempt_tallies_away RENAME TO webhook_attempt_tallies');
    }
    first.count(healthy, true);
    await first.flush();
    expect((await failureRates(db)).get(healthy)).toMatchObject({ kind: 'good', value: 1 / 6 });

    // Counted and not written yet: written at close.
    second.count(healthy, true);
    await Promise.all([first.close(), second.close()]);
    rates = await failureRates(db);
    expect(rates.get(healthy)).toMatchObject({ kind: 'bad', severity: 'warning', value: 2 / 7 });
  });
});

describe('the webhook dead-letter alert', () => {
  it('counts the dead letters of the window through their own index, not through every delivery finished in it', async () => {
    const fixture = await freshFixture();
    const { db } = fixture;
    const endpointId = await fixture.endpoint('dead letters');
    // Many deliveries finished in the window, a few dead, one dead before the window.
    await db.query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, topic, lane, body, trigger, state, attempts, event_time, finished_at)
       SELECT $1, 'dead-test-' || i, 'test.event', 'orders', 'event:dead-test-' || i, '{}', 'initial',
              CASE WHEN i <= 3 THEN 'dead' ELSE 'delivered' END, 1, now(), now() - CASE WHEN i = 1 THEN interval '1 hour' ELSE interval '1 second' END
         FROM generate_series(1, 5000) AS i`,
      [endpointId],
    );
    await db.query('ANALYZE webhook_deliveries');

    const plans: string[] = [];
    const client: pg.Client = await explainingClient(fixture.url, plans);
    try {
      const readings = await webhookDeadLettersRule(databaseOn(client), { allowed: 0 }).read({ windowMs: WINDOW_MS });
      expect(readings.find((reading) => reading.subject === `endpoint:${endpointId}`)?.verdict).toMatchObject({ kind: 'bad', value: 2 });
      const plan = plans.find((found) => found.includes('webhook_deliveries'));
      expect(plan).toContain('webhook_deliveries_dead_idx');
      expect(plan).not.toMatch(/Seq Scan on webhook_deliveries|webhook_deliveries_finished_idx/);

      // The admin's list of the endpoint's dead letters goes through the same index: not through
      // every delivery to the endpoint (578 ms at 30,000 of them, measured, against 1.2 ms).
      plans.length = 0;
      const dead = await listDeliveries(databaseOn(client), { endpointIds: [endpointId], state: 'dead', limit: 50 });
      expect(dead.map((delivery) => delivery.eventId).sort()).toEqual(['dead-test-1', 'dead-test-2', 'dead-test-3']);
      const listed = plans.find((found) => found.includes('webhook_deliveries'));
      expect(listed).toContain('webhook_deliveries_dead_idx');
    } finally {
      await client.end();
    }
  });
});
