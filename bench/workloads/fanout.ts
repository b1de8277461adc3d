/**
 * Workload "fanout": one topic, many graphql-ws subscribers, events published over HTTP.
 *
 * Every peer's server is booted once (one at a time), then measured in two sections, each with
 * load clients of its own on the same servers:
 * 1. one shared operation: every subscriber sends the same `subscription Fanout` — on Tributary
 *    one cohort, its best case;
 * 2. distinct operations: subscriber i sends `subscription Fanout<i>` with its own `where` value
 *    (which every event matches): the same payload and frames, but on Tributary a cohort per
 *    subscriber, as on a server without cohorts.
 * Per section: each peer's memory before and after its subscribers connect; peers alternating, a
 * fixed load (10 events/s to 1,000 subscribers = 10,000 messages/s) checked for zero loss and for
 * having run at the offered load; then a saturation search, peers alternating at each rate; then
 * the ratio lines. Each table is printed as soon as it is measured. The shared section also
 * measures the analytics overhead (`fanout-overhead.ts`).
 *
 * Only the measured peer runs during a step: every other server and its load client are paused
 * (SIGSTOP, `measureAlone`). One load client implementation (`lib/fanout-client.ts`, checking
 * every frame's bytes: `lib/frame-checks.ts`) and one publisher (`lib/publisher.ts`, latency from
 * each event's scheduled time) for every peer, each in a process of its own.
 */
import type { SubscribePayload } from 'graphql-ws';
import { startRedis, type RedisInstance } from '../../test/helpers/redis.ts';
import { LIGHT_REFERENCE, LIMIT, OURS, REFERENCE, type PeerName } from '../peers/peer.ts';
import { bootPeers } from '../lib/boot-peers.ts';
import { distinctFanoutSubscription, FANOUT_SUBSCRIPTION } from '../lib/fanout-payload.ts';
import { waitUntilIdle, type PeerProcess } from '../lib/peer-process.ts';
import { messageOf, print } from '../lib/report.ts';
import { formatMillis } from '../lib/stats.ts';
import { skip, type Workload, type WorkloadContext } from '../lib/workload.ts';
import { runAnalyticsOverhead } from './fanout-overhead.ts';
import { OURS_PEERS, reportRatios, reportSectionCost } from './fanout-ratios.ts';
import { reportFixed, reportMemory, reportSaturation, type FanoutSettings, type PeerOutcome } from './fanout-report.ts';
import { count, measure, searchSaturation } from './fanout-search.ts';
import { openSession } from './fanout-session.ts';

/** The same server with analytics off: measured only against `tributary`, for the overhead. */
const NO_ANALYTICS: PeerName = 'tributary-no-analytics';

/** Ours (in-memory, then Redis mode), the two Node GraphQL stacks, then the floor. */
const MEASURED: readonly PeerName[] = [OURS, 'tributary-redis', REFERENCE, LIGHT_REFERENCE, LIMIT];
/** Every server booted. */
const BOOTED: readonly PeerName[] = [OURS, NO_ANALYTICS, 'tributary-redis', REFERENCE, LIGHT_REFERENCE, LIMIT];

interface Section {
  /** Printed in every title of the section. */
  readonly label: string;
  /** What it is, printed above it. */
  readonly description: string;
  /** Subscriber i's operation. */
  readonly subscription: (subscribers: number) => SubscribePayload | readonly SubscribePayload[];
  readonly peers: readonly PeerName[];
}

const SHARED: Section = {
  label: 'one shared operation',
  description: 'every subscriber sends the same `subscription Fanout($topic)` — on Tributary one cohort (filtered, executed, serialized once per event): its best case',
  subscription: () => FANOUT_SUBSCRIPTION,
  peers: [...MEASURED.slice(0, 1), NO_ANALYTICS, ...MEASURED.slice(1)],
};

const DISTINCT: Section = {
  label: 'distinct operations',
  description:
    'subscriber i sends `subscription Fanout<i>($topic, $where)` with `where: { field: "payload.seq", gt: -(i + 1) }` (every event matches): ' +
    'the same payload and frames, but no two subscribers share an operation — on Tributary a cohort per subscriber',
  subscription: (subscribers) => Array.from({ length: subscribers }, (_, index) => distinctFanoutSubscription(index)),
  peers: MEASURED,
};

const FULL: FanoutSettings = {
  subscribers: 1000,
  fixedRate: 10,
  warmupSeconds: 2,
  fixedSeconds: 6,
  startRate: 20,
  maxRate: 20_480,
  minRate: 1.25,
  stepSeconds: 2,
  refinements: 2,
  retries: 1,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 5000 },
  settleMs: 5000,
  overheadRounds: 6,
  overheadRate: 40,
  overheadSeconds: 3,
};

const QUICK: FanoutSettings = {
  subscribers: 200,
  fixedRate: 10,
  warmupSeconds: 0.5,
  fixedSeconds: 1.5,
  startRate: 40,
  maxRate: 20_480,
  minRate: 2.5,
  stepSeconds: 0.5,
  refinements: 0,
  retries: 0,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 2000 },
  settleMs: 2000,
  overheadRounds: 5,
  overheadRate: 20,
  overheadSeconds: 1,
};

export const fanout: Workload = {
  name: 'fanout',
  description: 'one topic, N graphql-ws subscribers, `publish` over HTTP: one shared operation, then distinct operations; fixed load, saturation, memory',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    print(
      `${settings.subscribers.toLocaleString('en-US')} subscribers of one topic, ~200-byte payloads; ` +
        `fixed load ${settings.fixedRate} events/s (${(settings.fixedRate * settings.subscribers).toLocaleString('en-US')} msgs/s) ` +
        `${settings.fixedSeconds} s × ${context.rounds} rounds after ${settings.warmupSeconds} s warm-up; ` +
        `saturation steps of ${settings.stepSeconds} s from ${settings.startRate} events/s, ${settings.retries} retr${settings.retries === 1 ? 'y' : 'ies'} per failed rate; ` +
        'only the measured server runs during a step (the others and their load clients are paused)',
    );
    const { peers, notStarted, redis } = await bootAll(context);
    const failures: string[] = [];
    const sections = new Map<Section, PeerOutcome[]>();
    let firstSeq = 1;
    try {
      for (const section of [SHARED, DISTINCT]) {
        const started = performance.now();
        const result = await runSection(context, section, settings, { peers, notStarted, redis }, firstSeq);
        firstSeq = result.nextSeq;
        failures.push(...result.failures);
        sections.set(section, result.outcomes);
        print(`(${section.label}: ${formatMillis(performance.now() - started)})`);
      }
      reportSectionCost(sections.get(SHARED) ?? [], sections.get(DISTINCT) ?? [], settings);
    } finally {
      await Promise.all([...peers.values()].map((peer) => peer.stop()));
      await redis?.dispose();
    }
    if (failures.length > 0) throw new Error(`fanout: ${failures.join('; ')}`);
  },
};

interface Servers {
  readonly peers: ReadonlyMap<PeerName, PeerProcess>;
  /** Why a server did not start. */
  readonly notStarted: ReadonlyMap<PeerName, string>;
  readonly redis: RedisInstance | undefined;
}

/** Starts a private redis-server (for `tributary-redis`; a skip without one), then every server, one at a time. */
async function bootAll(context: WorkloadContext): Promise<Servers> {
  let redis: RedisInstance | undefined;
  try {
    const server = await startRedis();
    context.defer(`redis-server :${server.port}`, () => server.dispose());
    redis = server;
  } catch (error) {
    skip(context, 'fanout: tributary-redis', `no private redis-server: ${messageOf(error)}`);
  }
  const names = BOOTED.filter((name) => name !== 'tributary-redis' || redis);
  const booted = await bootPeers(context, names, { optionsOf: (name) => (name === 'tributary-redis' && redis ? { env: { REDIS_URL: redis.url } } : {}) });
  const peers = new Map<PeerName, PeerProcess>();
  const notStarted = new Map<PeerName, string>();
  for (const [index, name] of names.entries()) {
    const peer = booted[index];
    if (typeof peer === 'object') {
      peers.set(name, peer);
      // Idle until its subscribers are opened.
      peer.pause();
    } else notStarted.set(name, peer ?? 'not started');
  }
  return { peers, notStarted, redis };
}

interface SectionResult {
  readonly outcomes: PeerOutcome[];
  readonly failures: string[];
  /** The next sequence number after the section's events (the next section's first). */
  readonly nextSeq: number;
}

async function runSection(context: WorkloadContext, section: Section, settings: FanoutSettings, servers: Servers, firstSeq: number): Promise<SectionResult> {
  const { peers, notStarted, redis } = servers;
  print();
  print(`-- ${section.label}: ${section.description}`);
  const outcomes: PeerOutcome[] = section.peers
    .filter((name) => name !== 'tributary-redis' || redis)
    .map((name) => ({ name, session: undefined, failure: peers.has(name) ? undefined : (notStarted.get(name) ?? 'not started'), fixed: [], steps: [] }));
  try {
    await openSessions(context, section, settings, outcomes, peers, redis, firstSeq);
    const measured = outcomes.filter((outcome) => outcome.name !== NO_ANALYTICS);
    reportMemory(measured, settings, section.label);

    const fixedStep = (seconds: number) => ({ rate: settings.fixedRate, count: count(settings.fixedRate, seconds), ordered: true, tolerance: settings.tolerance });
    for (const outcome of measured) await measure(outcomes, outcome, settings, (session) => session.step(fixedStep(settings.warmupSeconds)));
    for (let round = 0; round < context.rounds; round += 1) {
      for (const outcome of measured) {
        const result = await measure(outcomes, outcome, settings, (session) => session.step(fixedStep(settings.fixedSeconds)));
        if (result) outcome.fixed.push(result);
      }
    }
    reportFixed(measured, settings, context.rounds, section.label);

    const searchStarted = performance.now();
    await searchSaturation(measured, settings, outcomes);
    reportSaturation(measured, settings, section.label);
    print(`(saturation search: ${formatMillis(performance.now() - searchStarted)})`);
    reportRatios(measured, settings, section.label);

    const [on, off] = [outcomes.find((outcome) => outcome.name === OURS), outcomes.find((outcome) => outcome.name === NO_ANALYTICS)];
    if (on?.session && off?.session) await runAnalyticsOverhead(outcomes, on, off, settings);

    const nextSeq = Math.max(firstSeq, ...outcomes.map((outcome) => outcome.session?.nextSeq ?? firstSeq));
    return { outcomes, failures: failuresOf(outcomes, section), nextSeq };
  } finally {
    // The load clients go; the servers stay for the next section, paused once they have freed the
    // sockets (so the next section's memory sample starts from servers without them).
    for (const outcome of outcomes) {
      const peer = peers.get(outcome.name);
      if (!outcome.session || !peer) continue;
      await outcome.session.stop();
      await waitUntilIdle(peer, settings.settleMs).catch(() => undefined);
      peer.pause();
    }
  }
}

/** Opens each peer's subscribers with every other server paused, each between two memory samples. */
async function openSessions(
  context: WorkloadContext,
  section: Section,
  settings: FanoutSettings,
  outcomes: readonly PeerOutcome[],
  peers: ReadonlyMap<PeerName, PeerProcess>,
  redis: RedisInstance | undefined,
  firstSeq: number,
): Promise<void> {
  for (const outcome of outcomes) {
    const peer = peers.get(outcome.name);
    if (!peer) continue;
    for (const other of outcomes) await other.session?.pause(settings.settleMs);
    peer.resume();
    try {
      const session = await openSession({
        peer,
        subscribers: settings.subscribers,
        redis: outcome.name === 'tributary-redis' ? redis : undefined,
        subscription: section.subscription(settings.subscribers),
        frameCheck: 'fanout-event',
        keepPeer: true,
        firstSeq,
      });
      context.defer(`load client of ${outcome.name} (${section.label})`, () => session.stop());
      outcome.session = session;
    } catch (error) {
      outcome.failure = `could not subscribe: ${messageOf(error)}`;
      peer.pause();
    }
  }
}

/** What makes the run fail: a peer that could not be measured, or one of ours losing messages at the fixed load. */
function failuresOf(outcomes: readonly PeerOutcome[], section: Section): string[] {
  const failures: string[] = [];
  for (const outcome of outcomes) if (outcome.failure !== undefined) failures.push(`${outcome.name} (${section.label}): ${outcome.failure}`);
  for (const name of OURS_PEERS) {
    const outcome = outcomes.find((candidate) => candidate.name === name);
    const lossy = outcome?.fixed.find((result) => !result.lossless || !result.inOrder);
    if (lossy) failures.push(`${name} (${section.label}) failed the zero-loss check at the fixed load: ${lossy.problem ?? '?'}`);
  }
  return failures;
}
