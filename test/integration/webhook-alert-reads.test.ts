/**
 * What the webhook alert rules read every evaluation, on a real Postgres: figures that do not grow
 * with the traffic (migrations/0021).
 *
 * The failure rate comes from the attempts' tallies: each worker process counts its attempts per
 * endpoint and adds them to one row per endpoint and 10-second span, which every process adds to.
 * A write that fails keeps its counts for the next; close writes what is left; spans before the
 * window are not read. The dead letters are read through an index of dead letters alone — not
 * every delivery finished in the window — and so is the admin's list of an endpoint's dead letters.
 *
 * Both rules read the endpoints in trouble (failures, dead letters in the window) and the ones
 * whose alert or streaks they must move, not every endpoint of the cluster up to a cap: an endpoint
 * is judged however many others sort before it, and past the cap the rest come in the next reading.
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { MAX_READINGS_PER_RULE } from '../../src/pipeline/alerts/alert-rule.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { webhookDeadLettersRule, webhookFailureRateRule } from '../../src/pipeline/alerts/rules/webhook-rules.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createAttemptTallies } from '../../src/pipeline/webhooks/attempt-tallies.ts';
import { listDeliveries } from '../../src/pipeline/webhooks/delivery-log.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { databaseOn, explainingClient } from '../helpers/single-connection.ts';

const logger = createLogger({ level: 'silent' });
/** Far beyond the test: every write here is the test's own. */
const NEVER_MS = 600_000;
const WINDOW_MS = 300_000;
const THRESHOLDS = { minSamples: 4, criticalRatio: 0.5, warningRatio: 0.2 };
/** What a rule is told when no subject of it has an alert or streaks. */
const NOTHING_WATCHED = { windowMs: WINDOW_MS, watched: [] };

/** A platform database of the test's own, disposed after it. */
async function freshFixture() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  return fixture;
}

/** The failure-rate rule's reading of each endpoint, as `[endpointId, verdict]`, with `watched` as an alert or streaks of theirs would (read even without a failure). */
async function failureRates(db: Database, watched: readonly string[]) {
  const scope = { app: 'app', env: 'env', tenant: undefined };
  const readings = await webhookFailureRateRule(db, THRESHOLDS).read({ windowMs: WINDOW_MS, watched: watched.map((id) => ({ subject: `endpoint:${id}`, scope })) });
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
    let rates = await failureRates(db, [healthy]);
    expect(rates.get(failing)).toMatchObject({ kind: 'bad', severity: 'critical', value: 0.75 });
    // One attempt (the span at the window's start), delivered: below the minimum sample, too few to
    // fire on, yet good — enough to resolve on.
    expect(rates.get(healthy)).toEqual({ kind: 'good', value: 0 });
    // Without a failure, and without an alert or streaks to move, an endpoint is not read at all.
    expect([...(await failureRates(db, [])).keys()]).toEqual([failing]);

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
    expect((await failureRates(db, [healthy])).get(healthy)).toMatchObject({ kind: 'good', value: 1 / 6 });

    // Counted and not written yet: written at close.
    second.count(healthy, true);
    await Promise.all([first.close(), second.close()]);
    rates = await failureRates(db, [healthy]);
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
      const readings = await webhookDeadLettersRule(databaseOn(client), { allowed: 0 }).read(NOTHING_WATCHED);
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

/** `count` endpoints of another app (`a00001`…), whose ids sort before every `ep_…` of the fixture. */
async function endpointsBefore(db: Database, count: number): Promise<void> {
  await db.query(
    `INSERT INTO webhook_endpoints (id, app, env, url, events, secret, max_concurrency)
     SELECT 'a' || lpad(i::text, 5, '0'), 'other', 'env', 'https://receiver.example/hook', ARRAY['*'], 's', 1 FROM generate_series(1, $1) AS i`,
    [count],
  );
}

/** One delivery to each of `endpointIds`, dead-lettered `ago` (an interval) ago. */
async function deadLetters(db: Database, endpointIds: string | readonly string[], ago = '1 second'): Promise<void> {
  await db.query(
    `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, topic, lane, body, trigger, state, attempts, event_time, finished_at)
     SELECT id, 'dead-' || id, 'test.event', 'orders', 'event:dead-' || id, '{}', 'initial', 'dead', 1, now(), now() - $2::interval
       FROM unnest($1::text[]) AS id`,
    [typeof endpointIds === 'string' ? [endpointIds] : endpointIds, ago],
  );
}

describe('the webhook alerts of a cluster with more endpoints than a rule reads at once', () => {
  it('fires and resolves both alerts of an endpoint that 5,000 quiet endpoints sort before', { timeout: 60_000 }, async () => {
    const fixture = await freshFixture();
    const { db, endpointId } = fixture;
    // 5,000 endpoints of another app with healthy attempts in the window, and no dead letter.
    await endpointsBefore(db, MAX_READINGS_PER_RULE);
    await db.query(`INSERT INTO webhook_attempt_tallies (endpoint_id, span_start, attempts, failures) SELECT id, now(), 50, 0 FROM webhook_endpoints WHERE app = 'other'`);
    // The fixture's endpoint: every attempt failed, one delivery dead-lettered.
    await db.query('INSERT INTO webhook_attempt_tallies (endpoint_id, span_start, attempts, failures) VALUES ($1, now(), 10, 10)', [endpointId]);
    await deadLetters(db, endpointId);
    const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
    onTestFinished(() => log.close());
    const evaluator = createAlertEvaluator({
      db,
      router: createEventRouter({ log, logger }),
      rules: [webhookFailureRateRule(db, THRESHOLDS), webhookDeadLettersRule(db, { allowed: 0 })],
      policy: { fireAfter: 2, resolveAfter: 3 },
      windowMs: WINDOW_MS,
      holder: 'test',
      leaseMs: 60_000,
      logger,
    });
    const scope = { app: 'app', env: 'env', tenant: undefined };
    const failureRate = alertIdOf({ rule: 'webhook.failure_rate', subject: `endpoint:${endpointId}`, scope });
    const dead = alertIdOf({ rule: 'webhook.dead_letters', subject: `endpoint:${endpointId}`, scope });

    for (let evaluation = 0; evaluation < 2; evaluation += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
    expect(await getAlert(db, failureRate)).toMatchObject({ state: 'firing', severity: 'critical', lastValue: 1 });
    expect(await getAlert(db, dead)).toMatchObject({ state: 'firing', lastValue: 1 });
    // None of the quiet endpoints got anything.
    expect((await db.query(`SELECT count(*)::int AS n FROM alerts WHERE subject LIKE 'endpoint:a%'`)).rows).toEqual([{ n: 0 }]);

    // The endpoint recovers: its attempts succeed, its dead letter leaves the window. Though it has
    // no dead letter to list any more, its open alert is read (0) and resolves.
    await db.query('UPDATE webhook_attempt_tallies SET failures = 0 WHERE endpoint_id = $1', [endpointId]);
    await db.query("UPDATE webhook_deliveries SET finished_at = now() - interval '1 hour' WHERE endpoint_id = $1", [endpointId]);
    for (let evaluation = 0; evaluation < 3; evaluation += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
    expect(await getAlert(db, failureRate)).toMatchObject({ state: 'resolved', lastValue: 0 });
    expect(await getAlert(db, dead)).toMatchObject({ state: 'resolved', lastValue: 0 });
  });

  it('reads the endpoints past its cap in its next reading, and the evaluator says the cap was hit', { timeout: 60_000 }, async () => {
    const fixture = await freshFixture();
    const { db, endpointId } = fixture;
    // 5,001 endpoints with a dead letter each: one more than a reading holds.
    await endpointsBefore(db, MAX_READINGS_PER_RULE);
    await deadLetters(db, [...(await db.query<{ id: string }>('SELECT id FROM webhook_endpoints')).rows.map((row) => row.id)]);
    const rule = webhookDeadLettersRule(db, { allowed: 0 });
    const subjects = async () => (await rule.read(NOTHING_WATCHED)).map((reading) => reading.subject);

    const first = await subjects();
    expect(first).toHaveLength(MAX_READINGS_PER_RULE);
    expect(first).not.toContain(`endpoint:${endpointId}`);
    // The next reading goes on after the last one read, then starts over.
    expect(await subjects()).toEqual([`endpoint:${endpointId}`]);
    expect(await subjects()).toEqual(first);

    // The evaluator logs a rule that filled its reading.
    const lines: { level: number; msg: string; rule?: string }[] = [];
    const warnings = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) } });
    const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
    onTestFinished(() => log.close());
    const evaluator = createAlertEvaluator({
      db,
      router: createEventRouter({ log, logger }),
      rules: [webhookDeadLettersRule(db, { allowed: 0 })],
      policy: { fireAfter: 1_000, resolveAfter: 3 },
      windowMs: WINDOW_MS,
      holder: 'test',
      leaseMs: 60_000,
      logger: warnings,
    });
    expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
    expect(lines).toContainEqual(expect.objectContaining({ rule: 'webhook.dead_letters', readings: MAX_READINGS_PER_RULE, msg: expect.stringMatching(/cap/) as unknown }));
  });
});
