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
 * Saturation is a steady state: every sender first works off `warmup` deliveries that are not
 * measured — its JIT compiled, its connections open, its pipeline full — and goes straight on with
 * the measured ones (one backlog, one queue, one loop: no pause between). Without it the figures
 * were those of a cold start and swung with the runner's history: the same plain loop drained 10,000
 * at 8,000/s cold and at 25,000/s once warm. The rate from the first delivery, warm-up included, is
 * reported too.
 *
 * Measured at the receiver: the last warm-up delivery → the last delivery. CPU over the same part:
 * the sending process (Tributary's drain process, or the runner's for the naive worker and the
 * loop), the Postgres backends of the mode's database, redis-server, and the receivers' process.
 * For Tributary also the statements its database ran then (`pg_stat_statements`): the round trips
 * a delivery costs. Then Tributary's server runs `LATE_COPY_GRACE_MS` longer, measured no more: a
 * delivery sent twice is sent again after a retry's backoff, after the last first copy arrived.
 */
import { setTimeout as sleep } from 'node:timers/promises';
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
import type { ReceiverReport, WarmUp } from '../lib/webhook-receiver-protocol.ts';
import type { WebhookReceivers } from '../lib/webhook-receivers-process.ts';
import type { WorkloadContext } from '../lib/workload.ts';
import type { SourceDatabase } from './cdc-setup.ts';
import { seedBacklog } from './webhooks-backlog.ts';
import { LATE_COPY_GRACE_MS, MODES, environmentOf, type Mode } from './webhooks-setup.ts';

export interface DrainSettings {
  /** Deliveries measured (one endpoint, one receiver: one per event), after the warm-up. */
  readonly deliveries: number;
  /** Deliveries each sender works off first, unmeasured (the backlog is `warmup + deliveries`). */
  readonly warmup: number;
  /** Attempts in flight at once, for every sender: the endpoint's maxConcurrency and WEBHOOK_CONCURRENCY, the worker's, the loop's. */
  readonly concurrency: number;
  /** Longest a drain may take, in ms. */
  readonly timeoutMs: number;
  /** Times every sender drains a backlog, one after another in each round (`--rounds`). */
  readonly rounds: number;
}

export type DrainKind = 'tributary' | 'naive' | 'limit';

export interface DrainOutcome {
  readonly name: string;
  readonly kind: DrainKind;
  /** The round it was measured in, from 1. */
  readonly round: number;
  /** Deliveries measured, and the warm-up's before them. */
  readonly deliveries: number;
  readonly warmup: number;
  /** What the receiver saw of the whole backlog, warm-up included: received once, twice, and when the first and last arrived. */
  readonly receiver: ReceiverReport | undefined;
  /**
   * Second copies that arrived after the drain was collected, by the time the outcome was made
   * (Tributary: after `LATE_COPY_GRACE_MS` more; the other senders do not retry).
   */
  readonly lateDuplicates: number;
  /** The last warm-up delivery → the last delivery at the receiver, in ms: the measured part. */
  readonly elapsedMs: number;
  /** First delivery → last delivery, warm-up included, in ms: the drain from a cold start. */
  readonly wholeElapsedMs: number;
  /** CPU over the measured part, in µs: the sending process, Postgres backends of its database, redis-server (NaN where none), the receivers' process. */
  readonly senderCpuMicros: number;
  readonly postgresCpuMicros: number;
  readonly redisCpuMicros: number;
  readonly receiverCpuMicros: number;
  /** Commands redis-server ran over the measured part, those inside Lua scripts included (NaN where none). */
  readonly redisCommands: number;
  /** How the backlog was made, for the notes (e.g. `10,000 deliveries stored in 1.4 s`). */
  readonly seeded: string | undefined;
  /** What the sender asked of Postgres during the measured part (Tributary only; empty otherwise). */
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

/** CPU so far (µs) of what a sender uses: its process, its database's backends (NaN: none), redis-server (undefined: none). */
interface Usage {
  readonly senderCpuMicros: number;
  readonly postgresCpuMicros: number;
  readonly redis: RedisUsage | undefined;
}

/** A drain through the receiver: the report of the whole backlog, the end of the warm-up, and the usage then and at the end. */
interface Measured {
  readonly receiver: ReceiverReport;
  readonly warm: WarmUp;
  readonly atWarm: Usage;
  readonly atEnd: Usage;
}

/** What a drain's measurement may also wait for or do. */
interface MeasureOptions {
  /** The sender's own run, awaited before the step is collected (the POST loop). */
  readonly sending?: Promise<unknown>;
  /** Runs at the end of the warm-up, with the first reading (e.g. resets statement counts). */
  readonly onWarm?: () => Promise<void>;
}

/**
 * With the step expected and the sender started: waits for the warm-up, reads the usage (and runs
 * `onWarm`), waits for the sender and the step's end, and reads the usage again. Rejects when the
 * warm-up does not come within the timeout.
 */
async function measureDrain(shared: DrainContext, settings: DrainSettings, usage: () => Promise<Usage>, options: MeasureOptions = {}): Promise<Measured> {
  const warm = await shared.receivers.warmed(settings.timeoutMs);
  const [atWarm] = await Promise.all([usage(), options.onWarm?.()]);
  await options.sending;
  const receiver = await shared.receivers.collect(settings.timeoutMs);
  return { receiver, warm, atWarm, atEnd: await usage() };
}

/** The fields of an outcome a measured drain gives. */
function measuredFields(measured: Measured): Partial<DrainOutcome> {
  const { receiver, warm, atWarm, atEnd } = measured;
  return {
    receiver,
    elapsedMs: receiver.lastAt - warm.at,
    senderCpuMicros: atEnd.senderCpuMicros - atWarm.senderCpuMicros,
    postgresCpuMicros: atEnd.postgresCpuMicros - atWarm.postgresCpuMicros,
    receiverCpuMicros: receiver.cpuMicros - warm.cpuMicros,
    ...(atEnd.redis && atWarm.redis && { redisCpuMicros: atEnd.redis.cpuMicros - atWarm.redis.cpuMicros, redisCommands: atEnd.redis.commands - atWarm.redis.commands }),
  };
}

/** The runner's own CPU so far, in µs (the naive worker and the loop run in it). */
const runnerCpuMicros = () => {
  const cpu = process.cpuUsage();
  return cpu.user + cpu.system;
};

/**
 * Runs every configuration, one at a time, `rounds` times over; never throws for what a sender did.
 * The machine's speed drifts by tens of percent from one minute to the next here: senders compared
 * within a round ran seconds apart.
 */
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
      ...MODES.map((mode) => (round: number) => drainTributary(drainShared, settings, mode, url, round)),
      (round: number) => drainNaive(drainShared, settings, url, round),
      (round: number) => drainPlainLoop(drainShared, settings, url, round),
    ];
    const outcomes: DrainOutcome[] = [];
    for (let round = 1; round <= settings.rounds; round += 1) {
      for (const run of runs) {
        const outcome = await run(round);
        progress(outcome);
        outcomes.push(outcome);
      }
    }
    return outcomes;
  } finally {
    monitor.disconnect();
  }
}

function outcomeOf(name: string, kind: DrainKind, round: number, settings: DrainSettings, fields: Partial<DrainOutcome>): DrainOutcome {
  const receiver = fields.receiver;
  return {
    name,
    kind,
    round,
    deliveries: settings.deliveries,
    warmup: settings.warmup,
    receiver,
    lateDuplicates: 0,
    elapsedMs: Number.NaN,
    wholeElapsedMs: receiver === undefined ? Number.NaN : receiver.lastAt - receiver.firstAt,
    senderCpuMicros: Number.NaN,
    postgresCpuMicros: Number.NaN,
    redisCpuMicros: Number.NaN,
    receiverCpuMicros: Number.NaN,
    redisCommands: Number.NaN,
    seeded: undefined,
    statements: [],
    failure: undefined,
    ...fields,
  };
}

async function drainTributary(shared: DrainContext, settings: DrainSettings, mode: Mode, url: string, round: number): Promise<DrainOutcome> {
  const { context, source, redis, receivers } = shared;
  const name = mode.name;
  const database = `webhooks_drain_${mode.name.replace('tributary-', '')}_${round}`;
  const total = settings.warmup + settings.deliveries;
  const firstSeq = shared.takeSeq(total);
  let server: PeerProcess | undefined;
  let seeded: string | undefined;
  try {
    const databaseUrl = await source.createDatabase(database);
    const redisKeyPrefix = `bench-webhooks-drain-${mode.name}-${round}:`;
    seeded = await seedBacklog({ databaseUrl, url, concurrency: settings.concurrency, redisUrl: mode.redis ? redis.url : undefined, redisKeyPrefix, firstSeq, count: total });

    await receivers.expect(firstSeq, total, 1, { warmup: settings.warmup, sender: name });
    // The drain starts as the process boots; it is measured once the warm-up is through.
    const env = environmentOf({ databaseUrl, concurrency: settings.concurrency, ...(mode.redis && { redisUrl: redis.url, redisKeyPrefix }) });
    const started = await context.startPeer(mode.peer, { startTimeoutMs: 120_000, env });
    server = started;
    const usage = async (): Promise<Usage> => {
      const [senderCpuMicros, postgresCpuMicros, redisUsage] = await Promise.all([started.cpuMicros(), source.databaseCpuMicros(database), mode.redis ? shared.redisUsage() : undefined]);
      return { senderCpuMicros, postgresCpuMicros, redis: redisUsage };
    };
    const measured = await measureDrain(shared, settings, usage, { onWarm: () => shared.statements.reset(database) });
    const statements = await shared.statements.read(database);
    await sleep(LATE_COPY_GRACE_MS);
    const lateDuplicates = await lateDuplicatesOf(receivers, firstSeq);
    return outcomeOf(name, 'tributary', round, settings, { ...measuredFields(measured), lateDuplicates, statements, seeded });
  } catch (error) {
    return outcomeOf(name, 'tributary', round, settings, { seeded, failure: messageOf(error) });
  } finally {
    await server?.stop();
    // Its dead rows would keep autovacuum busy through the next sender's drain.
    await source.dropDatabase(database);
  }
}

async function drainNaive(shared: DrainContext, settings: DrainSettings, url: string, round: number): Promise<DrainOutcome> {
  const { redis, receivers } = shared;
  const name = 'naive-bullmq';
  const total = settings.warmup + settings.deliveries;
  const firstSeq = shared.takeSeq(total);
  let failed = 0;
  let firstFailure: string | undefined;
  const naive = createNaiveBullmqWebhooks({
    redisUrl: redis.url,
    prefix: `bench-webhooks-naive-${round}`,
    concurrency: settings.concurrency,
    onFailed: (error) => {
      failed += 1;
      firstFailure ??= error.message;
    },
  });
  try {
    const seedStarted = performance.now();
    const deliveries = Array.from({ length: total }, (_, index) => ({ url, body: deliveredBody(firstSeq + index, clockMillis()) }));
    await naive.enqueue(deliveries);
    const seedMs = performance.now() - seedStarted;
    const seeded = `${total.toLocaleString('en-US')} jobs added in ${formatMillis(seedMs)}`;
    await receivers.expect(firstSeq, total, 1, { warmup: settings.warmup, sender: name });
    naive.start();
    const measured = await measureDrain(shared, settings, async () => ({ senderCpuMicros: runnerCpuMicros(), postgresCpuMicros: Number.NaN, redis: await shared.redisUsage() }));
    return outcomeOf(name, 'naive', round, settings, {
      ...measuredFields(measured),
      lateDuplicates: await lateDuplicatesOf(receivers, firstSeq),
      seeded,
      failure: failed > 0 ? `${failed} jobs failed, the first: ${firstFailure ?? '?'}` : undefined,
    });
  } catch (error) {
    return outcomeOf(name, 'naive', round, settings, { failure: messageOf(error) });
  } finally {
    await naive.close();
  }
}

async function drainPlainLoop(shared: DrainContext, settings: DrainSettings, url: string, round: number): Promise<DrainOutcome> {
  const name = 'plain-post-loop';
  const total = settings.warmup + settings.deliveries;
  const firstSeq = shared.takeSeq(total);
  try {
    await shared.receivers.expect(firstSeq, total, 1, { warmup: settings.warmup, sender: name });
    const loop = runPostLoop({ url, concurrency: settings.concurrency, firstSeq, count: total, body: deliveredBody, now: clockMillis });
    // Settled here, awaited after the warm-up: a loop that fails early leaves the warm-up short, and that is the error reported.
    loop.catch(() => undefined);
    const measured = await measureDrain(shared, settings, () => Promise.resolve({ senderCpuMicros: runnerCpuMicros(), postgresCpuMicros: Number.NaN, redis: undefined }), { sending: loop });
    const result = await loop;
    return outcomeOf(name, 'limit', round, settings, {
      ...measuredFields(measured),
      lateDuplicates: await lateDuplicatesOf(shared.receivers, firstSeq),
      failure: result.failures > 0 ? `${result.failures} requests failed, the first: ${result.firstFailure ?? '?'}` : undefined,
    });
  } catch (error) {
    return outcomeOf(name, 'limit', round, settings, { failure: messageOf(error) });
  }
}

/** Second copies of the drain from `firstSeq` that the receivers booked after it was collected. */
async function lateDuplicatesOf(receivers: WebhookReceivers, firstSeq: number): Promise<number> {
  const late = await receivers.late();
  return late.steps.find((step) => step.firstSeq === firstSeq)?.duplicates ?? 0;
}

/** Prints one line per configuration while the run goes on (the table comes at the end). */
export function printDrainProgress(outcome: DrainOutcome): void {
  print(`  round ${outcome.round}, ${outcome.name}: ${outcome.failure ?? `${formatRate(measuredRate(outcome))} over ${formatMillis(outcome.elapsedMs)} after a warm-up of ${outcome.warmup.toLocaleString('en-US')}`}`);
}

/** Deliveries of the measured part that arrived (all of them, unless the drain timed out). */
export function measuredDeliveries(outcome: DrainOutcome): number {
  return outcome.receiver ? outcome.receiver.received - outcome.warmup : Number.NaN;
}

/** Deliveries a second over the measured part. */
export function measuredRate(outcome: DrainOutcome): number {
  return measuredDeliveries(outcome) / (outcome.elapsedMs / 1000);
}
