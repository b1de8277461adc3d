import { randomUUID } from 'node:crypto';
import { expect, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertEvaluator, type AlertEvaluator } from '../../src/pipeline/alerts/alert-evaluator.ts';
import type { AlertRule } from '../../src/pipeline/alerts/alert-rule.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';

const logger = createLogger({ level: 'silent' });

/** An evaluator of `rules` on `db` (fire after 2, resolve after 3, a 5-minute window), run by hand (no timer), and the events it placed. */
export function evaluatorOn(db: Database, rules: AlertRule[]): { evaluator: AlertEvaluator; placed: RealtimeEvent[] } {
  const placed: RealtimeEvent[] = [];
  const log = createMemoryLog({ retention: { maxEvents: 1_000, maxAgeMs: 3_600_000 }, publish: () => {} });
  onTestFinished(() => log.close());
  const router = createEventRouter({ log, logger, afterPlaced: (events) => (placed.push(...events), Promise.resolve()) });
  const evaluator = createAlertEvaluator({ db, router, rules, policy: { fireAfter: 2, resolveAfter: 3 }, windowMs: 300_000, holder: randomUUID(), leaseMs: 60_000, logger });
  return { evaluator, placed };
}

/** Runs `times` evaluations, each of which must have evaluated (held the lease). */
export async function evaluate(evaluator: AlertEvaluator, times: number): Promise<void> {
  for (let done = 0; done < times; done += 1) expect(await evaluator.evaluate()).toMatchObject({ evaluated: true });
}
