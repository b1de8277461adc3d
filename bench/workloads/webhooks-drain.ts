/**
 * The `webhooks` workload's saturation part: how fast a backlog of deliveries to one receiver is
 * worked off, by Tributary (both delivery modes), by the naive BullMQ worker
 * (`peers/naive-bullmq-webhooks.ts`) and by a plain keep-alive POST loop (`peers/plain-post-loop.ts`,
 * the physical limit), one after another, each with the same concurrency and the same body.
 *
 * Tributary's backlog: the runner prepares a platform database of the mode's own and writes the
 * endpoint and the deliveries with the engine's own functions, as a server and its routing tap
 * would (`webhooks-backlog.ts`); then a server of the mode (role `all`) starts on that database (and, for
 * BullMQ, that queue) and drains them. Publishing the events instead would take minutes here (a
 * few hundred publishes a second, each stored and queued) and add nothing to what is measured.
 * The naive worker's jobs are added with `addBulk` before its worker starts; the POST loop has no
 * backlog, just a count.
 *
 * Measured at the receiver: first delivery → last delivery. CPU: the sending process from when it
 * was ready (Tributary's drain process, or the runner's for the naive worker and the loop), the
 * Postgres backends of the mode's database, redis-server, and the receivers' process. For
 * Tributary also the statements its database ran (`pg_stat_statements`): the round trips a
 * delivery costs.
 */
import { Redis } from 'ioredis';
import type { RedisInstance } from '../../test/helpers/redis.ts';
import { createNaiveBullmqWebhooks } from '../peers/naive-bullmq-webhooks.ts';
import { runPostLoop } from '../peers/plain-post-loop.ts';
import { processCpuMicros } from '../lib/cpu.ts';
import { clockMillis } from '../lib/fanout-payload.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { messageOf, print } from '../lib/report.ts';
import { formatMillis, formatRate } from '../lib/stats.ts';
import { deliveredBody } from '../lib/webhook-payload.ts';
import type { StatementCount, StatementStats } from '../lib/statement-stats.ts';
import type { ReceiverReport } from '../lib/webhook-receiver-protocol.ts';
import type { WebhookReceivers } from '../lib/webhook-receivers-process.ts';
import type { WorkloadContext } from '../lib/workload.ts';
import type { SourceDatabase } from './cdc-setup.ts';
import { seedBacklog } from './webhooks-backlog.ts';
import { MODES, environmentOf, type Mode } from './webhooks-setup.ts';

export interface DrainSettings {
  /** Deliveries in the backlog (one endpoint, one receiver: one per event). */
  readonly deliveries: number;
  /** Attempts in flight at once, for every sender: the endpoint's maxConcurrency and WEBHOOK_CONCURRENCY, the worker's, the loop's. */
  readonly concurrency: number;
  /** Longest a drain may take, in ms. */
  readonly timeoutMs: number;
}

export type DrainKind = 'tributary' | 'naive' | 'limit';

export interface DrainOutcome {
  readonly name: string;
  readonly kind: DrainKind;
  readonly deliveries: number;
  /** What the receiver saw: received once, twice, and when the first and last arrived. */
  readonly receiver: ReceiverReport | undefined;
  /** First delivery → last delivery at the receiver, in ms. */
  readonly elapsedMs: number;
  /** CPU over the drain, in µs: the sending process, Postgres backends of its database, redis-server (NaN where none). */
  readonly senderCpuMicros: number;
  readonly postgresCpuMicros: number;
  readonly redisCpuMicros: number;
  /** Commands redis-server ran over the drain, those inside Lua scripts included (NaN where none). */
  readonly redisCommands: number;
  /** How the backlog was made, for the notes (e.g. `10,000 deliveries stored in 1.4 s`). */
  readonly seeded: string | undefined;
  /** What the sender asked of Postgres during the drain (Tributary only; empty otherwise). */
  readonly statements: readonly StatementCount[];
  readonly failure: string | undefined;
}

export interface DrainShared {
  readonly context: WorkloadContext;
  readonly source: SourceDatabase;
  readonly redis: RedisInstance;
  readonly receivers: WebhookReceivers;
  readonly statements: StatementStats;
  takeSeq(count: number): number;
}

/** redis-server so far: its CPU time (µs) and the commands it processed. */
interface RedisUsage {
  readonly cpuMicros: number;
  readonly commands: number;
}

/** What each configuration's drain gets: the shared parts, and a reading of redis-server. */
interface DrainContext extends DrainShared {
  redisUsage(): Promise<RedisUsage>;
}

/** Runs every configuration, one at a time; never throws for what a sender did. */
export async function runDrain(shared: DrainShared, settings: DrainSettings, progress: (outcome: DrainOutcome) => void = () => undefined): Promise<DrainOutcome[]> {
  const [url] = await shared.receivers.listen(1);
  if (url === undefined) throw new Error('no receiver');
  // Its own connection, idle but for INFO: the commands counted are the senders'.
  const monitor = new Redis(shared.redis.url, { maxRetriesPerRequest: 2 });
  monitor.on('error', () => {});
  const redisUsage = async (): Promise<RedisUsage> => {
    const [cpuMicros, info] = await Promise.all([processCpuMicros(shared.redis.pid), monitor.info('stats')]);
    return { cpuMicros, commands: Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? Number.NaN) };
  };
  const drainShared: DrainContext = { ...shared, redisUsage };
  try {
    const runs = [
      ...MODES.map((mode) => () => drainTributary(drainShared, settings, mode, url)),
      () => drainNaive(drainShared, settings, url),
      () => drainPlainLoop(drainShared, settings, url),
    ];
    const outcomes: DrainOutcome[] = [];
    for (const run of runs) {
      const outcome = await run();
      progress(outcome);
      outcomes.push(outcome);
    }
    return outcomes;
  } finally {
    monitor.disconnect();
  }
}

function outcomeOf(name: string, kind: DrainKind, settings: DrainSettings, fields: Partial<DrainOutcome>): DrainOutcome {
  const receiver = fields.receiver;
  return {
    name,
    kind,
    deliveries: settings.deliveries,
    receiver,
    elapsedMs: receiver === undefined ? Number.NaN : receiver.lastAt - receiver.firstAt,
    senderCpuMicros: Number.NaN,
    postgresCpuMicros: Number.NaN,
    redisCpuMicros: Number.NaN,
    redisCommands: Number.NaN,
    seeded: undefined,
    statements: [],
    failure: undefined,
    ...fields,
  };
}

async function drainTributary(shared: DrainContext, settings: DrainSettings, mode: Mode, url: string): Promise<DrainOutcome> {
  const { context, source, redis, receivers } = shared;
  const name = mode.name;
  const database = `webhooks_drain_${mode.name.replace('tributary-', '')}`;
  const firstSeq = shared.takeSeq(settings.deliveries);
  let server: PeerProcess | undefined;
  let seeded: string | undefined;
  try {
    const databaseUrl = await source.createDatabase(database);
    const redisKeyPrefix = `bench-webhooks-drain-${mode.name}:`;
    seeded = await seedBacklog({ databaseUrl, url, concurrency: settings.concurrency, redisUrl: mode.redis ? redis.url : undefined, redisKeyPrefix, firstSeq, count: settings.deliveries });

    await receivers.expect(firstSeq, settings.deliveries, 1);
    await shared.statements.reset(database);
    // The drain starts as the process boots: CPU is counted from its ready line (the workers
    // start last, just before it), the rate at the receiver from its first delivery.
    const env = environmentOf({ databaseUrl, concurrency: settings.concurrency, ...(mode.redis && { redisUrl: redis.url, redisKeyPrefix }) });
    server = await context.startPeer(mode.peer, { startTimeoutMs: 120_000, env });
    const [serverBefore, postgresBefore, redisBefore] = await Promise.all([server.cpuMicros(), source.databaseCpuMicros(database), shared.redisUsage()]);
    const receiver = await receivers.collect(settings.timeoutMs);
    const [serverAfter, postgresAfter, redisAfter] = await Promise.all([server.cpuMicros(), source.databaseCpuMicros(database), shared.redisUsage()]);
    const statements = await shared.statements.read(database);
    return outcomeOf(name, 'tributary', settings, {
      receiver,
      statements,
      senderCpuMicros: serverAfter - serverBefore,
      postgresCpuMicros: postgresAfter - postgresBefore,
      ...(mode.redis && { redisCpuMicros: redisAfter.cpuMicros - redisBefore.cpuMicros, redisCommands: redisAfter.commands - redisBefore.commands }),
      seeded,
    });
  } catch (error) {
    return outcomeOf(name, 'tributary', settings, { seeded, failure: messageOf(error) });
  } finally {
    await server?.stop();
  }
}

async function drainNaive(shared: DrainContext, settings: DrainSettings, url: string): Promise<DrainOutcome> {
  const { redis, receivers } = shared;
  const name = 'naive-bullmq-fetch';
  const firstSeq = shared.takeSeq(settings.deliveries);
  let failed = 0;
  let firstFailure: string | undefined;
  const naive = createNaiveBullmqWebhooks({
    redisUrl: redis.url,
    prefix: 'bench-webhooks-naive',
    concurrency: settings.concurrency,
    onFailed: (error) => {
      failed += 1;
      firstFailure ??= error.message;
    },
  });
  try {
    const seedStarted = performance.now();
    const deliveries = Array.from({ length: settings.deliveries }, (_, index) => ({ url, body: deliveredBody(firstSeq + index, clockMillis()) }));
    await naive.enqueue(deliveries);
    const seedMs = performance.now() - seedStarted;
    const seeded = `${settings.deliveries.toLocaleString('en-US')} jobs added in ${formatMillis(seedMs)}`;
    await receivers.expect(firstSeq, settings.deliveries, 1);
    const cpuBefore = process.cpuUsage();
    const redisBefore = await shared.redisUsage();
    naive.start();
    const receiver = await receivers.collect(settings.timeoutMs);
    const cpu = process.cpuUsage(cpuBefore);
    const redisAfter = await shared.redisUsage();
    return outcomeOf(name, 'naive', settings, {
      receiver,
      senderCpuMicros: cpu.user + cpu.system,
      redisCpuMicros: redisAfter.cpuMicros - redisBefore.cpuMicros,
      redisCommands: redisAfter.commands - redisBefore.commands,
      seeded,
      failure: failed > 0 ? `${failed} jobs failed, the first: ${firstFailure ?? '?'}` : undefined,
    });
  } catch (error) {
    return outcomeOf(name, 'naive', settings, { failure: messageOf(error) });
  } finally {
    await naive.close();
  }
}

async function drainPlainLoop(shared: DrainShared, settings: DrainSettings, url: string): Promise<DrainOutcome> {
  const name = 'plain-post-loop';
  const firstSeq = shared.takeSeq(settings.deliveries);
  try {
    await shared.receivers.expect(firstSeq, settings.deliveries, 1);
    const cpuBefore = process.cpuUsage();
    const result = await runPostLoop({ url, concurrency: settings.concurrency, firstSeq, count: settings.deliveries, body: deliveredBody, now: clockMillis });
    const receiver = await shared.receivers.collect(settings.timeoutMs);
    const cpu = process.cpuUsage(cpuBefore);
    return outcomeOf(name, 'limit', settings, {
      receiver,
      senderCpuMicros: cpu.user + cpu.system,
      failure: result.failures > 0 ? `${result.failures} requests failed, the first: ${result.firstFailure ?? '?'}` : undefined,
    });
  } catch (error) {
    return outcomeOf(name, 'limit', settings, { failure: messageOf(error) });
  }
}

/** Prints one line per configuration while the run goes on (the table comes at the end). */
export function printDrainProgress(outcome: DrainOutcome): void {
  const rate = outcome.receiver ? outcome.receiver.received / (outcome.elapsedMs / 1000) : Number.NaN;
  print(`  ${outcome.name}: ${outcome.failure ?? `${formatRate(rate)} over ${formatMillis(outcome.elapsedMs)}`}`);
}
