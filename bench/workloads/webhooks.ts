/**
 * Workload "webhooks": events leaving Tributary as signed HTTP POSTs to endpoints, in both
 * delivery modes (BullMQ with Redis; the in-process loop without), against the targets.
 *
 * 1. Latency, event → receiver (`webhooks-latency.ts`): 10 endpoints, each its own receiver on
 *    loopback selecting the topic; `publish` over HTTP at 10, 100 and 1,000 events/s for 5 s
 *    (`--quick`: 10 and 1,000 for 1 s) — 10 deliveries per event — modes alternating over
 *    `--rounds`. The issue asks for 100 and 1,000; 10/s shows the latency of a server that is
 *    not overloaded.
 *    Aim: p99 ≤ 50 ms at 1,000 events/s.
 * 2. Latency, spread (`webhooks-latency.ts` again, on servers of its own): the other reading of the
 *    issue's "1,000 events/s to 10 local endpoints" — endpoint i selects only topic
 *    `bench.webhooks.i`, event `seq` is published on `bench.webhooks.${seq % 10}`, so each event is
 *    one delivery, to receiver `seq % 10`; 100 and 1,000 events/s (`--quick`: 1,000), otherwise as 1.
 *    Aim: p99 ≤ 50 ms at 1,000 events/s (= 1,000 deliveries/s).
 * 3. Saturation (`webhooks-drain.ts`): a backlog of 10,000 + 30,000 deliveries (`--quick`: 1,000
 *    + 1,500) to one receiver drained by each mode, by a naive BullMQ job-per-delivery + undici `request`
 *    worker and by a plain keep-alive POST loop (the physical limit), all with 100 in flight; the
 *    first 10,000 warm each sender up, the rest are measured (steady state); every sender once per
 *    `--rounds` (`--quick`: once), compared within its round.
 *    Aim: ≥ 0.5× the plain loop, on the median of the rounds.
 *
 * One private Postgres (platform databases, one per mode and part) and one private redis-server
 * for the whole workload; the receivers run in a process of their own. Everything is stopped at
 * the end, also on failure.
 *
 * Every step's events are numbered from the run's one sequence, and the receivers keep every step:
 * a copy that arrives after its step was collected (a retry after its backoff, often in the other
 * mode's step) is counted against its own step and sender, listed at the end; a Tributary mode
 * with one fails the run as a duplicate within a step does.
 */
import { startRedis } from '../../test/helpers/redis.ts';
import { print } from '../lib/report.ts';
import { createStatementStats } from '../lib/statement-stats.ts';
import { formatMillis } from '../lib/stats.ts';
import { startWebhookReceivers } from '../lib/webhook-receivers-process.ts';
import type { Workload } from '../lib/workload.ts';
import { startSourceDatabase } from './cdc-setup.ts';
import { printDrainProgress, runDrain, type DrainSettings } from './webhooks-drain.ts';
import { PUBLISHES_IN_FLIGHT, runLatency, type LatencySettings } from './webhooks-latency.ts';
import { reportDrain, reportLateCopies, reportLatency, reportStatements } from './webhooks-report.ts';

interface WebhooksSettings {
  readonly latency: LatencySettings;
  /** The spread steps: `latency`'s settings but for the rates and `spread`. */
  readonly spread: LatencySettings;
  /** The drain's rounds are `--rounds` (one with `--quick`). */
  readonly drain: Omit<DrainSettings, 'rounds'>;
}

const FULL_LATENCY: LatencySettings = { endpoints: 10, rates: [10, 100, 1000], warmupRate: 10, warmupSeconds: 1, seconds: 5, collectTimeoutMs: 10_000 };
const QUICK_LATENCY: LatencySettings = { endpoints: 10, rates: [10, 1000], warmupRate: 10, warmupSeconds: 0.5, seconds: 1, collectTimeoutMs: 3_000 };

const FULL: WebhooksSettings = {
  latency: FULL_LATENCY,
  spread: { ...FULL_LATENCY, rates: [100, 1000], spread: true },
  drain: { deliveries: 30_000, warmup: 10_000, concurrency: 100, timeoutMs: 60_000 },
};

const QUICK: WebhooksSettings = {
  latency: QUICK_LATENCY,
  spread: { ...QUICK_LATENCY, rates: [1000], spread: true },
  drain: { deliveries: 1_500, warmup: 1_000, concurrency: 100, timeoutMs: 15_000 },
};

/**
 * Over the CDC workload's Postgres settings: autovacuum on — deliveries are updated twice and
 * their attempts inserted, at hundreds a second, and production vacuums that — and
 * pg_stat_statements, to count what a delivery asks of Postgres.
 */
const POSTGRES_SETTINGS = { autovacuum: true, shared_preload_libraries: 'pg_stat_statements' };

/** The latency servers' limits, left at their defaults: attempts in flight per process, and per endpoint. */
const LATENCY_LIMITS = 'WEBHOOK_CONCURRENCY 50 and maxConcurrency 10 per endpoint (the defaults)';

export const webhooks: Workload = {
  name: 'webhooks',
  description:
    'event → webhook receiver latency at 10, 100 and 1,000 events/s to all of 10 endpoints, and at 100 and 1,000 events/s spread over them (a topic each); drain rate of a backlog against a naive BullMQ worker and a plain POST loop',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    print(
      'modes: tributary-bullmq (REDIS_URL: BullMQ queue) and tributary-embedded (no Redis: the in-process loop), each role all with its platform database on one private Postgres ' +
        '(synchronous_commit=on, fsync=off, autovacuum on); receivers: plain node:http servers on 127.0.0.1 in a process of their own, answering 204',
    );
    const started = performance.now();
    const [source, redis] = await Promise.all([startSourceDatabase(context, { settings: POSTGRES_SETTINGS }), startRedis()]);
    context.defer(`redis-server :${redis.port}`, () => redis.dispose());
    const statements = await createStatementStats(source.url);
    context.defer('pg_stat_statements connection', () => statements.close());
    const receivers = startWebhookReceivers();
    context.defer('webhook receivers', () => receivers.stop());
    print(`postgres, redis-server and receivers ready in ${formatMillis(performance.now() - started)}`);

    let nextSeq = 1;
    const takeSeq = (count: number) => {
      const first = nextSeq;
      nextSeq += count;
      return first;
    };
    const shared = { context, source, redis, receivers, statements, takeSeq };

    const failures: string[] = [];
    print();
    const latency = await runLatency(shared, settings.latency);
    for (const rate of settings.latency.rates) {
      failures.push(
        ...reportLatency(latency, { endpoints: settings.latency.endpoints, rate, seconds: settings.latency.seconds, rounds: context.rounds, concurrency: LATENCY_LIMITS, publishesInFlight: PUBLISHES_IN_FLIGHT }),
      );
    }

    print();
    print(`spread: each event to one of ${settings.spread.endpoints} endpoints, endpoint i selecting topic bench.webhooks.i only; servers of their own`);
    const spread = await runLatency(shared, settings.spread);
    for (const rate of settings.spread.rates) {
      failures.push(
        ...reportLatency(spread, {
          endpoints: settings.spread.endpoints,
          rate,
          seconds: settings.spread.seconds,
          rounds: context.rounds,
          concurrency: LATENCY_LIMITS,
          publishesInFlight: PUBLISHES_IN_FLIGHT,
          spread: true,
        }),
      );
    }

    print();
    const drainSettings = { ...settings.drain, rounds: context.quick ? 1 : context.rounds };
    print(
      `drain: ${settings.drain.warmup.toLocaleString('en-US')} deliveries to warm up, then ${settings.drain.deliveries.toLocaleString('en-US')} measured, per sender; ${settings.drain.concurrency} in flight, one sender at a time, ${drainSettings.rounds} round${drainSettings.rounds === 1 ? '' : 's'}`,
    );
    const drains = await runDrain(shared, drainSettings, printDrainProgress);
    failures.push(...reportDrain(drains, drainSettings));
    reportStatements(drains);
    // Last: a copy of any step of the run, whenever it came (every server is stopped by now).
    failures.push(...reportLateCopies(await receivers.late(), [...new Set(drains.map((drain) => drain.name))]));
    if (failures.length > 0) throw new Error(`webhooks: ${failures.join('; ')}`);
  },
};
