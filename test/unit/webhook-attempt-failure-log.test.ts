/**
 * The delivery workers' own failures (`attempt-failure-log.ts`): an outage is told at warn when it
 * begins, again at most once a minute while it lasts — a failure that never heals (a revoked
 * permission, a bug) must not go quiet after its first line — and when attempts end normally.
 */
import { expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createAttemptFailureLog, FAILURE_REMINDER_MS } from '../../src/pipeline/webhooks/attempt-failure-log.ts';
import { captureLogs } from '../helpers/tributary.ts';

it('tells a failure that goes on at warn once a minute with its count, the rest at debug', () => {
  const sink = captureLogs();
  let clock = 0;
  const log = createAttemptFailureLog(createLogger({ level: 'debug', destination: sink }), () => clock);
  // 1,000 failures over 2.5 minutes, one every 150 ms.
  for (let failure = 0; failure < 1_000; failure += 1) {
    log.failed(new Error('permission denied for table webhook_deliveries'), String(failure));
    clock += 150;
  }
  log.succeeded();
  const warns = sink.lines.filter((line) => line.level === 40);
  expect(warns.map((line) => [line.msg.split(';')[0], line['failures']])).toEqual([
    ['webhook attempt failed', undefined],
    ['webhook attempts keep failing', Math.floor(FAILURE_REMINDER_MS / 150) + 1],
    ['webhook attempts keep failing', 2 * Math.floor(FAILURE_REMINDER_MS / 150) + 1],
    ['webhook attempts end normally again', 1_000],
  ]);
  expect(warns[1]?.err?.message).toBe('permission denied for table webhook_deliveries');
  expect(sink.lines.filter((line) => line.level === 20)).toHaveLength(1_000 - 3);
  expect(sink.lines.filter((line) => line.level >= 50)).toEqual([]);
});
