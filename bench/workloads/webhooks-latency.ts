/**
 * The `webhooks` workload's latency part: event → receiver. Each mode is a Tributary of its own
 * (role `all`: one process stores and delivers), its platform database a database of its own on
 * the private Postgres, with one endpoint per receiver. Events are `publish` mutations POSTed over
 * HTTP (`lib/publisher.ts`, in the runner's process) whose payload carries `seq` and the time they
 * were sent; the receivers (another process) book every arrival. Two fan-outs, each a run of its
 * own (`runLatency` called once per fan-out, on servers and databases of its own):
 *
 * - all endpoints: every endpoint selects the workload's topic, so every event becomes one
 *   delivery per endpoint;
 * - spread: endpoint i selects topic `bench.webhooks.i` only and event `seq` is published on
 *   `bench.webhooks.${seq % endpoints}`, so every event is one delivery, to receiver `seq % endpoints`.
 *
 * Steps at each rate, modes alternating over the rounds, after an untimed warm-up that also
 * proves every endpoint delivers. A step not delivered completely within the collect timeout
 * after its last publish stops that mode's server (its backlog would run on into the other mode's
 * steps) and its further rounds at that rate; the step is still reported, with what had arrived,
 * and the next rate starts on a fresh server (a database of its own, warmed up again). Every step
 * names its mode to the receivers, so a copy that arrives after its step (a retry, maybe during the
 * other mode's step) is counted against it; the last servers run `LATE_COPY_GRACE_MS` longer for that.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisInstance } from '../../test/helpers/redis.ts';
import { busyCores, processCpuMicros, sampleMachineCpu } from '../lib/cpu.ts';
import { clockMillis } from '../lib/fanout-payload.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { createPublisher, type Publisher, type PublishReport } from '../lib/publisher.ts';
import { messageOf, print } from '../lib/report.ts';
import { formatMillis } from '../lib/stats.ts';
import { spreadPublishBody, webhookPublishBody } from '../lib/webhook-payload.ts';
import type { ReceiverReport } from '../lib/webhook-receiver-protocol.ts';
import type { WebhookReceivers } from '../lib/webhook-receivers-process.ts';
import type { WorkloadContext } from '../lib/workload.ts';
import type { SourceDatabase } from './cdc-setup.ts';
import { LATE_COPY_GRACE_MS, MODES, createEndpoints, environmentOf, type Mode, type ModeName } from './webhooks-setup.ts';

export interface LatencySettings {
  /** Receivers, one endpoint each: every event is this many deliveries (one when `spread`). */
  readonly endpoints: number;
  /** Each event to one endpoint (topic per endpoint) instead of all of them. @default false */
  readonly spread?: boolean;
  /** Events per second, in run order. */
  readonly rates: readonly number[];
  readonly warmupRate: number;
  readonly warmupSeconds: number;
  /** Length of one timed step, in s. */
  readonly seconds: number;
  /** How long the last deliveries of a step are waited for after its last publish, in ms. */
  readonly collectTimeoutMs: number;
}

/** Publishes in flight at once: at 1,000/s a publish that takes over a millisecond must not hold the next back. */
export const PUBLISHES_IN_FLIGHT = 32;

/** One timed step of one mode. */
export interface LatencyStep {
  readonly rate: number;
  readonly events: number;
  readonly publish: PublishReport;
  readonly receivers: ReceiverReport;
  /** From the first publish to the last arrival, in ms. */
  readonly wallMs: number;
  /** CPU over the step, in µs: the Tributary process, its database's Postgres backends, redis-server (NaN without). */
  readonly serverCpuMicros: number;
  readonly postgresCpuMicros: number;
  readonly redisCpuMicros: number;
  /** The whole machine, in cores (NaN without /proc/stat). */
  readonly machineBusy: number;
  /**
   * The other modes' server processes over the step, in cores: they are left running (a paused
   * BullMQ worker would lose its job locks), so what they use idle is reported, not removed.
   */
  readonly bystandersBusy: number;
}

export interface LatencyOutcome {
  readonly mode: ModeName;
  /** By rate: the steps measured. */
  readonly steps: ReadonlyMap<number, readonly LatencyStep[]>;
  /** It could not be measured at all (did not start, warm-up not delivered, an error). */
  readonly failure: string | undefined;
}

export interface LatencyShared {
  readonly context: WorkloadContext;
  readonly source: SourceDatabase;
  readonly redis: RedisInstance;
  readonly receivers: WebhookReceivers;
  /** Hands out event sequence numbers, so no two steps of the run share one. */
  takeSeq(count: number): number;
}

interface Member {
  readonly mode: Mode;
  /** Servers started so far: each gets a database (and a Redis prefix) of its own. */
  generation: number;
  /** The database of the server running now. */
  database: string;
  peer: PeerProcess | undefined;
  publisher: Publisher | undefined;
  readonly steps: Map<number, LatencyStep[]>;
  failure: string | undefined;
  /** Rates at which a step was not delivered completely (the server was stopped after it). */
  readonly incomplete: Set<number>;
}

export async function runLatency(shared: LatencyShared, settings: LatencySettings): Promise<LatencyOutcome[]> {
  const { context } = shared;
  const urls = await shared.receivers.listen(settings.endpoints);
  const members: Member[] = MODES.map((mode) => ({
    mode,
    generation: 0,
    database: '',
    peer: undefined,
    publisher: undefined,
    steps: new Map(settings.rates.map((rate) => [rate, []])),
    failure: undefined,
    incomplete: new Set(),
  }));
  try {
    for (const rate of settings.rates) {
      // A server left with a backlog was stopped; each rate starts from a fresh one, warmed up.
      await startServers(shared, settings, members, urls);
      for (let round = 0; round < context.rounds; round += 1) {
        for (const member of members) {
          if (member.failure !== undefined || member.incomplete.has(rate) || !member.peer) continue;
          const step = await measure(shared, settings, member, rate, settings.seconds, members);
          if (!step) continue;
          member.steps.get(rate)?.push(step);
          if (!step.receivers.complete) {
            // Its backlog would run on into the other mode's steps: stopped, with it.
            member.incomplete.add(rate);
            await stopMember(member, shared.source);
          }
        }
      }
    }
  } finally {
    // A retry of the last steps' deliveries comes after its backoff: the receivers book it (as a
    // late copy of its step) only while its server still runs.
    if (members.some((member) => member.peer)) await sleep(LATE_COPY_GRACE_MS);
    await Promise.all(members.map((member) => stopMember(member, shared.source)));
  }
  return members.map((member) => ({ mode: member.mode.name, steps: member.steps, failure: member.failure }));
}

function describeShortfall(report: ReceiverReport): string {
  return `${report.missing.toLocaleString('en-US')} of ${(report.received + report.missing).toLocaleString('en-US')} deliveries still missing after the collect timeout`;
}

/** Stops the member's server and drops its database (the next server gets a new one). */
async function stopMember(member: Member, source: Pick<SourceDatabase, 'dropDatabase'>): Promise<void> {
  member.publisher?.close();
  member.publisher = undefined;
  await member.peer?.stop();
  member.peer = undefined;
  if (member.database !== '') await source.dropDatabase(member.database);
  member.database = '';
}

/**
 * Boots a server for every mode that has none (one at a time; boot printed, never measured) on a
 * database of its own, creates its endpoints and warms it up: a warm-up not delivered in time
 * means the mode cannot be measured at all.
 */
async function startServers(shared: LatencyShared, settings: LatencySettings, members: readonly Member[], urls: readonly string[]): Promise<void> {
  const { context, source, redis } = shared;
  const spread = settings.spread === true;
  // Names of their own: the other fan-out's servers ran on databases and Redis prefixes of the same generations.
  const part = spread ? 'spread' : 'latency';
  // Spread, the warm-up must be long enough for an event to every endpoint.
  const warmupSeconds = spread ? Math.max(settings.warmupSeconds, settings.endpoints / settings.warmupRate) : settings.warmupSeconds;
  const boots: string[] = [];
  for (const member of members) {
    if (member.peer || member.failure !== undefined) continue;
    const { mode } = member;
    member.generation += 1;
    member.database = `webhooks_${part}_${mode.name.replace('tributary-', '')}_${member.generation}`;
    const started = performance.now();
    try {
      const databaseUrl = await source.createDatabase(member.database);
      const env = environmentOf({ databaseUrl, ...(mode.redis && { redisUrl: redis.url, redisKeyPrefix: `bench-webhooks-${part}-${member.generation}:` }) });
      member.peer = await context.startPeer(mode.peer, { startTimeoutMs: 120_000, env });
      await createEndpoints(member.peer, urls, { spread });
      member.publisher = createPublisher({ url: member.peer.httpUrl, body: spread ? spreadPublishBody(urls.length) : webhookPublishBody });
      boots.push(`${mode.name} ${formatMillis(performance.now() - started)}`);
    } catch (error) {
      member.failure = `could not start: ${messageOf(error)}`;
      await stopMember(member, source);
      continue;
    }
    const warm = await measure(shared, settings, member, settings.warmupRate, warmupSeconds);
    if (warm && !warm.receivers.complete) member.failure = `the warm-up was not delivered in time: ${describeShortfall(warm.receivers)}`;
    if (member.failure !== undefined) await stopMember(member, source);
  }
  if (boots.length > 0) {
    const endpoints = spread ? `${urls.length} endpoints each, a topic each` : `${urls.length} endpoints each`;
    print(`servers ready, ${endpoints}, warmed up (one at a time; boot not measured): ${boots.join(', ')}`);
  }
}

/** One step: `rate × seconds` events published, then every delivery waited for (at most the collect timeout). */
async function measure(
  shared: LatencyShared,
  settings: LatencySettings,
  member: Member,
  rate: number,
  seconds: number,
  group: readonly Member[] = [],
): Promise<LatencyStep | undefined> {
  const { peer, publisher } = member;
  const others = group.filter((other) => other !== member && other.peer).map((other) => other.peer?.pid);
  const othersCpu = async () => (await Promise.all(others.map((pid) => processCpuMicros(pid)))).reduce((sum, micros) => sum + (Number.isFinite(micros) ? micros : 0), 0);
  if (!peer || !publisher) return undefined;
  const count = Math.max(5, Math.round(rate * seconds));
  const firstSeq = shared.takeSeq(count);
  try {
    await publisher.connect(PUBLISHES_IN_FLIGHT);
    await shared.receivers.expect(firstSeq, count, settings.endpoints, { spread: settings.spread === true, sender: member.mode.name });
    const [serverBefore, postgresBefore, redisBefore, othersBefore] = await Promise.all([
      peer.cpuMicros(),
      shared.source.databaseCpuMicros(member.database),
      processCpuMicros(shared.redis.pid),
      othersCpu(),
    ]);
    const startedAt = clockMillis();
    const machineBefore = sampleMachineCpu();
    // Open loop, bounded: what the server could not take by the end of the step is not sent.
    const publish = await publisher.run({ firstSeq, count, rate, maxInFlight: PUBLISHES_IN_FLIGHT, until: clockMillis() + seconds * 1000 });
    const receivers = await shared.receivers.collect(settings.collectTimeoutMs, publish.sent);
    const machineAfter = sampleMachineCpu();
    const [serverAfter, postgresAfter, redisAfter, othersAfter] = await Promise.all([
      peer.cpuMicros(),
      shared.source.databaseCpuMicros(member.database),
      processCpuMicros(shared.redis.pid),
      othersCpu(),
    ]);
    if (publish.failures > 0) throw new Error(`${publish.failures} publishes failed, the first: ${publish.firstFailure ?? '?'}`);
    return {
      rate,
      events: publish.sent,
      publish,
      receivers,
      wallMs: (Number.isNaN(receivers.lastAt) ? publish.lastSentAt : receivers.lastAt) - publish.startedAt,
      serverCpuMicros: serverAfter - serverBefore,
      postgresCpuMicros: postgresAfter - postgresBefore,
      redisCpuMicros: member.mode.redis ? redisAfter - redisBefore : Number.NaN,
      machineBusy: busyCores(machineBefore, machineAfter),
      bystandersBusy: (othersAfter - othersBefore) / ((clockMillis() - startedAt) * 1000),
    };
  } catch (error) {
    member.failure = messageOf(error);
    await stopMember(member, shared.source);
    return undefined;
  }
}
