/**
 * The CDC alert rules at rule level: a platform database (a real Postgres) where environment
 * `app/env` reads source `src1`, the leader's store to write its status as the CDC leader does,
 * and an evaluator of the CDC rules over a 5-minute window, driven one evaluation at a time.
 */
import { randomUUID } from 'node:crypto';
import { expect, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator, type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import { cdcRules, type CdcThresholds } from '../../src/pipeline/alerts/rules/cdc-rules.ts';
import { createCdcStore, type CdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createDeliveryFixture } from './delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });

/** The alerts' scope: the environment reading `src1`. */
export const CDC_ALERT_SCOPE = { app: 'app', env: 'env', tenant: undefined };

export async function cdcAlertsFixture(thresholds: CdcThresholds): Promise<{ db: Database; store: CdcStore; evaluator: AlertEvaluator }> {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const evaluator = createAlertEvaluator({
    db,
    router: createEventRouter({ log, logger }),
    rules: cdcRules(db, thresholds),
    policy: { fireAfter: 2, resolveAfter: 3 },
    windowMs: 300_000,
    holder: randomUUID(),
    leaseMs: 60_000,
    logger,
  });
  await db.query("INSERT INTO cdc_sources (app, env, database_url) VALUES ('app', 'env', 'postgres://source.example/app')");
  return { db, store: createCdcStore(db), evaluator };
}

/** Runs `times` evaluations, each of which must have evaluated (held the lease). */
export async function evaluateTimes(evaluator: AlertEvaluator, times: number): Promise<void> {
  for (let done = 0; done < times; done += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
}
