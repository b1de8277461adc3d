/**
 * The evaluator's lease on a real Postgres: an evaluation that outlives its lease is written when
 * no other process took the lease over (one workers process, a slow database), and thrown away
 * when one did; the check in the write transaction holds a taker back until the evaluation is
 * written, and the taker then finds the lease renewed. A lease outlived is made by moving its
 * `expires_at` back from inside the evaluation, not by waiting.
 */
import { randomUUID } from 'node:crypto';
import { expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator, type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule } from '../../src/pipeline/alerts/alert-rule.ts';
import { alertIdOf, getAlert, listTrackers } from '../../src/pipeline/alerts/alert-store.ts';
import { confirmEvaluatorLease, takeEvaluatorLease } from '../../src/pipeline/alerts/evaluator-lease.ts';
import { createDeliveryFixture, holdOpen } from '../helpers/delivery-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const LEASE_MS = 60_000;

async function database(): Promise<Database> {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  return fixture.db;
}

function evaluatorOf(db: Database, rule: AlertRule, holder = randomUUID()): AlertEvaluator {
  return createAlertEvaluator({
    db,
    router: { route: () => Promise.resolve({}) as never },
    rules: [rule],
    policy: { fireAfter: 2, resolveAfter: 3 },
    windowMs: 300_000,
    holder,
    leaseMs: LEASE_MS,
    logger,
  });
}

/** A rule always bad about `subject`, running `during` while it reads. */
function badRule(subject: string, during: () => Promise<void> = () => Promise.resolve()): AlertRule {
  return {
    name: 'test.bad',
    description: 'always bad',
    async read() {
      await during();
      return [{ subject, scope: SCOPE, verdict: { kind: 'bad', severity: 'critical', value: 1, message: 'bad' } }];
    },
  };
}

const expireLease = (db: Database) => db.query("UPDATE alert_evaluator SET expires_at = now() - interval '1 second'").then(() => undefined);
const leaseRow = async (db: Database) =>
  (await db.query<{ holder: string; running: boolean }>('SELECT holder, expires_at > now() AS running FROM alert_evaluator WHERE id = 1')).rows[0];

it('writes an evaluation that outlived its lease when no other process took it over, and renews the lease', async () => {
  const db = await database();
  const holder = randomUUID();
  const evaluator = evaluatorOf(db, badRule('slow', () => expireLease(db)), holder);
  expect(await evaluator.evaluate()).toEqual({ evaluated: true, changes: 0 });
  expect(await evaluator.evaluate()).toEqual({ evaluated: true, changes: 1 });
  expect((await getAlert(db, alertIdOf({ rule: 'test.bad', subject: 'slow', scope: SCOPE })))?.state).toBe('firing');
  expect(await leaseRow(db)).toEqual({ holder, running: true });
});

it('writes nothing of an evaluation whose lease another process took over meanwhile', async () => {
  const db = await database();
  const other = evaluatorOf(db, badRule('by-other'));
  const stalled = evaluatorOf(
    db,
    badRule('by-stalled', async () => {
      // Stalled past its lease: the other process takes over and evaluates.
      await expireLease(db);
      expect(await other.evaluate()).toMatchObject({ evaluated: true });
    }),
  );
  expect(await stalled.evaluate()).toEqual({ evaluated: false, changes: 0 });
  expect((await listTrackers(db, 10)).map((tracker) => tracker.subject)).toEqual(['by-other']);
  // The other process keeps the lease: the stalled one cannot take it back.
  expect(await takeEvaluatorLease(db, randomUUID(), LEASE_MS)).toBe(false);
});

it('holds a taker back while an evaluation is written, which then finds the lease renewed', async () => {
  const db = await database();
  const [writer, taker] = [randomUUID(), randomUUID()];
  expect(await takeEvaluatorLease(db, writer, LEASE_MS)).toBe(true);
  // Running: confirmed as it is.
  expect(await db.transaction((tx) => confirmEvaluatorLease(tx, writer, LEASE_MS))).toBe('held');
  await expireLease(db);
  const writing = await holdOpen(db, (tx) => confirmEvaluatorLease(tx, writer, LEASE_MS));
  expect(writing.result).toBe('renewed');
  const taking = takeEvaluatorLease(db, taker, LEASE_MS);
  const waiting = async () =>
    (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]?.n ?? 0;
  await waitFor(async () => (await waiting()) > 0, { timeoutMs: 10_000, message: 'the take waits for the lease row' });
  await writing.commit();
  expect(await taking).toBe(false);
  expect(await leaseRow(db)).toEqual({ holder: writer, running: true });
  // Expired and taken by another: lost.
  await expireLease(db);
  expect(await takeEvaluatorLease(db, taker, LEASE_MS)).toBe(true);
  expect(await db.transaction((tx) => confirmEvaluatorLease(tx, writer, LEASE_MS))).toBe('lost');
});
