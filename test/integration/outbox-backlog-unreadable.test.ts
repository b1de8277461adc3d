/**
 * `outbox.backlog_age` while nobody can read the outbox, on a real platform database: the real
 * pollers, pointed at a database that refuses connections, keep only their error (the figures
 * stay as last measured, with their time), so the rule never judges figures nobody measured —
 * an open alert neither resolves on "0 s waited" nor on frozen figures — and an outbox unreadable
 * for longer than the window fires.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createAlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { alertIdOf, getAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { outboxBacklogRule } from '../../src/pipeline/alerts/rules/outbox-rules.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { getOutboxSource } from '../../src/pipeline/outbox/outbox-store.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createOutboxPollers } from '../../src/workers/outbox-pollers.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };
const WINDOW_MS = 300_000;
/** Nothing listens there: every connection is refused at once. */
const UNREACHABLE = 'postgres://postgres@127.0.0.1:1/gone';
const alertId = alertIdOf({ rule: 'outbox.backlog_age', subject: 'outbox:app/env', scope: SCOPE });

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const router = createEventRouter({ log, logger });
  const evaluator = createAlertEvaluator({
    db,
    router,
    rules: [outboxBacklogRule(db, { maxAgeSeconds: 60 })],
    policy: { fireAfter: 2, resolveAfter: 3 },
    windowMs: WINDOW_MS,
    holder: randomUUID(),
    leaseMs: 60_000,
    logger,
  });
  const evaluate = async (times: number) => {
    for (let done = 0; done < times; done += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
  };
  const pollers = () => {
    const created = createOutboxPollers({
      db,
      connect: (url) => createOutboxPool(url, logger),
      router,
      logger,
      metrics: createMetrics({ processMetrics: false }),
      pollIntervalMs: 1_000,
      retentionMs: 60_000,
      maxPayloadBytes: 65_536,
      // Refreshed by the test only; each source reports once, when its poller starts.
      reportIntervalMs: 3_600_000,
    });
    onTestFinished(() => created.close());
    return created;
  };
  return { db, evaluate, pollers };
}

/** An outbox source on the unreachable database, with figures as a reader measured them `measuredSecondsAgo` ago. */
async function source(db: Database, figures: { pending: number | null; oldest: number | null; measuredSecondsAgo: number | null; lastError?: string; setSecondsAgo?: number }) {
  await db.query(
    `INSERT INTO outbox_sources (app, env, outbox_id, database_url, table_name, requested_mode, read_mode, pending, oldest_pending_seconds, dead,
                                last_error, reported_at, updated_at)
     VALUES ('app', 'env', 'obx_test', $1, 'event_outbox', 'POLL', 'POLL', $2, $3, 0, $4,
             now() - make_interval(secs => $5), now() - make_interval(secs => $6))`,
    [UNREACHABLE, figures.pending, figures.oldest, figures.lastError ?? null, figures.measuredSecondsAgo, figures.setSecondsAgo ?? 0],
  );
}

describe('the outbox backlog alert while the outbox cannot be read', () => {
  it('stays firing when the pollers cannot reach the outbox, and their error leaves the figures and their time as measured', async () => {
    const { db, evaluate, pollers } = await setUp();
    await source(db, { pending: 5_000, oldest: 600, measuredSecondsAgo: 0 });
    await evaluate(2);
    expect(await getAlert(db, alertId)).toMatchObject({ state: 'firing' });
    const measuredAt = (await getOutboxSource(db, 'app', 'env'))?.report?.reportedAt;

    // A fresh worker process: it never measured this outbox, and cannot. A source's first report comes once its poller starts.
    await pollers().refresh();
    const report = await waitFor(async () => {
      const reported = (await getOutboxSource(db, 'app', 'env'))?.report;
      return reported?.lastError ? reported : undefined;
    });
    expect(report).toMatchObject({ pending: 5_000, oldestPendingSeconds: 600, reportedAt: measuredAt });
    expect(report?.lastError).toContain('ECONNREFUSED');

    await evaluate(3);
    expect(await getAlert(db, alertId)).toMatchObject({ state: 'firing', lastValue: 600 });
  });

  it('fires once the outbox has been unreadable for longer than the window, saying why', async () => {
    const { db, evaluate } = await setUp();
    await source(db, { pending: 0, oldest: null, measuredSecondsAgo: 400, lastError: 'The outbox event_outbox cannot be read: connect ECONNREFUSED' });
    await evaluate(2);
    const alert = await getAlert(db, alertId);
    expect(alert).toMatchObject({ state: 'firing', severity: 'warning' });
    expect(alert?.message).toMatch(/^the outbox cannot be read \(nothing measured for 40\d s\): The outbox event_outbox cannot be read: connect ECONNREFUSED$/);
  });

  it('fires for an outbox never measured since it was set longer than the window ago, its reader failing', async () => {
    const { db, evaluate } = await setUp();
    await source(db, { pending: null, oldest: null, measuredSecondsAgo: null, setSecondsAgo: 400, lastError: 'password authentication failed' });
    await evaluate(2);
    expect(await getAlert(db, alertId)).toMatchObject({ state: 'firing' });
  });

  it('is unknown, not good, for a fresh report without figures and for stale figures without an error', async () => {
    const { db, evaluate } = await setUp();
    await source(db, { pending: 5_000, oldest: 600, measuredSecondsAgo: 0 });
    await evaluate(2);
    expect(await getAlert(db, alertId)).toMatchObject({ state: 'firing' });

    // What a worker of the earlier version wrote when it could not read the outbox: no figures, "now".
    await db.query("UPDATE outbox_sources SET pending = NULL, oldest_pending_seconds = NULL, reported_at = now(), last_error = 'connect ECONNREFUSED'");
    await evaluate(3);
    expect(await getAlert(db, alertId)).toMatchObject({ state: 'firing' });

    // Figures older than the window, and no error: nobody reads the outbox to say.
    await db.query("UPDATE outbox_sources SET pending = 0, oldest_pending_seconds = NULL, last_error = NULL, reported_at = now() - interval '10 minutes'");
    await evaluate(3);
    expect(await getAlert(db, alertId)).toMatchObject({ state: 'firing' });
  });
});
