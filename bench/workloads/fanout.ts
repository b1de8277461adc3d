/**
 * Workload "fanout": one topic, many graphql-ws subscribers, events published over HTTP.
 *
 * Per peer, in its own fresh process: the server's memory before and after the subscribers
 * connect; then, peers alternating, a fixed load (10 events/s to 1,000 subscribers = 10,000
 * messages/s) checked for zero loss; then a saturation search, peers alternating at each rate:
 * the rate doubles until a step does not keep up (a loss, a failed publish, or a backlog that
 * outlasts the drain allowance), then bisects between the last rate kept up with and the first
 * not. One load client implementation (`lib/fanout-client.ts`) and one publisher
 * (`lib/publisher.ts`) for every peer, each in a process of its own.
 */
import { startRedis, type RedisInstance } from '../../test/helpers/redis.ts';
import type { PeerName } from '../peers/peer.ts';
import { bootPeers } from '../lib/boot-peers.ts';
import { messageOf, print } from '../lib/report.ts';
import { formatMillis } from '../lib/stats.ts';
import type { Workload, WorkloadContext } from '../lib/workload.ts';
import { bestStep, firstFailedAbove, reportFanout, type FanoutSettings, type PeerOutcome } from './fanout-report.ts';
import { openSession, type StepResult } from './fanout-session.ts';

/**
 * Ours first (in-memory, the same with analytics off — the overhead line compares the two —, then
 * Redis mode), then the stack it replaces, then the floor.
 */
const PEERS: readonly PeerName[] = ['tributary', 'tributary-no-analytics', 'tributary-redis', 'yoga-graphql-ws', 'raw-ws'];


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
};

export const fanout: Workload = {
  name: 'fanout',
  description: 'one topic, N graphql-ws subscribers, `publish` over HTTP: fixed load, saturation, memory',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    print(
      `${settings.subscribers.toLocaleString('en-US')} subscribers of one topic, ~200-byte payloads; ` +
        `fixed load ${settings.fixedRate} events/s (${(settings.fixedRate * settings.subscribers).toLocaleString('en-US')} msgs/s) ` +
        `${settings.fixedSeconds} s × ${context.rounds} rounds after ${settings.warmupSeconds} s warm-up; ` +
        `saturation steps of ${settings.stepSeconds} s from ${settings.startRate} events/s, ${settings.retries} retr${settings.retries === 1 ? 'y' : 'ies'} per failed rate`,
    );
    const { outcomes, redis } = await startSessions(context, settings);
    try {
      const live = () => outcomes.filter((outcome) => outcome.session && outcome.failure === undefined);
      const fixedStep = (seconds: number) => ({ rate: settings.fixedRate, count: count(settings.fixedRate, seconds), ordered: true, tolerance: settings.tolerance });
      for (const outcome of live()) await measure(outcome, (session) => session.step(fixedStep(settings.warmupSeconds)));
      for (let round = 0; round < context.rounds; round += 1) {
        for (const outcome of live()) {
          const result = await measure(outcome, (session) => session.step(fixedStep(settings.fixedSeconds)));
          if (result) outcome.fixed.push(result);
        }
      }
      const searchStarted = performance.now();
      await searchSaturation(live(), settings);
      print(`(saturation search: ${formatMillis(performance.now() - searchStarted)})`);
    } finally {
      // Each session stops its load client, then its server; Redis goes last.
      await Promise.all(outcomes.map(async (outcome) => outcome.session?.stop()));
      await redis?.dispose();
    }
    const failures = reportFanout(outcomes, settings, context.rounds);
    if (failures.length > 0) throw new Error(`fanout: ${failures.join('; ')}`);
  },
};

/** Starts every peer, then opens the subscribers of one peer at a time, each between two memory samples. */
async function startSessions(
  context: WorkloadContext,
  settings: FanoutSettings,
): Promise<{ outcomes: PeerOutcome[]; redis: RedisInstance | undefined }> {
  const outcomes: PeerOutcome[] = PEERS.map((name) => ({ name, session: undefined, failure: undefined, skipped: undefined, fixed: [], steps: [] }));
  let redis: RedisInstance | undefined;
  if (PEERS.includes('tributary-redis')) {
    try {
      const server = await startRedis();
      context.defer(`redis-server :${server.port}`, () => server.dispose());
      redis = server;
    } catch (error) {
      for (const outcome of outcomes) if (outcome.name === 'tributary-redis') outcome.skipped = `no private redis-server: ${messageOf(error)}`;
    }
  }
  const runnable = outcomes.filter((outcome) => outcome.skipped === undefined);
  const booted = await bootPeers(
    context,
    runnable.map((outcome) => outcome.name),
    { optionsOf: (name) => (name === 'tributary-redis' && redis ? { env: { REDIS_URL: redis.url } } : {}) },
  );
  for (const [index, outcome] of runnable.entries()) {
    const peer = booted[index];
    if (typeof peer === 'string') outcome.failure = peer;
    if (typeof peer !== 'object') continue;
    try {
      const session = await openSession({ peer, subscribers: settings.subscribers, redis: outcome.name === 'tributary-redis' ? redis : undefined });
      context.defer(`load client and server of ${outcome.name}`, () => session.stop());
      outcome.session = session;
    } catch (error) {
      outcome.failure = `could not subscribe: ${messageOf(error)}`;
      await peer.stop();
    }
  }
  return { outcomes, redis };
}

/**
 * Doubles the rate while a peer keeps up, every peer at the same rate before the next one
 * (ours, peer, …: drift on the machine lands on all alike); halves instead for a peer that
 * cannot keep up with the first rate; then bisects (geometric mean) between kept-up and not.
 * A rate not kept up with is tried `retries` more times before it counts.
 */
async function searchSaturation(outcomes: readonly PeerOutcome[], settings: FanoutSettings): Promise<void> {
  const stepAt = async (outcome: PeerOutcome, rate: number): Promise<StepResult | undefined> => {
    const result = await measure(outcome, (session) =>
      session.step({ rate, count: count(rate, settings.stepSeconds), ordered: false, tolerance: settings.tolerance }),
    );
    if (!result) return undefined;
    outcome.steps.push(result);
    // A server still working off a backlog would steal the next peer's CPU.
    if (!result.keptUp) await outcome.session?.settle(settings.settleMs);
    return result;
  };
  const usable = (outcome: PeerOutcome) => outcome.failure === undefined && outcome.session?.broken === undefined;
  const tryRate = async (outcome: PeerOutcome, rate: number) => {
    let result = await stepAt(outcome, rate);
    for (let retry = 0; result?.keptUp === false && retry < settings.retries && usable(outcome); retry += 1) result = await stepAt(outcome, rate);
  };

  let climbing = outcomes.filter(usable);
  for (let rate = settings.startRate; climbing.length > 0 && rate <= settings.maxRate; rate *= 2) {
    for (const outcome of climbing) await tryRate(outcome, rate);
    climbing = climbing.filter((outcome) => usable(outcome) && outcome.steps.at(-1)?.keptUp === true);
  }
  for (const outcome of outcomes) {
    for (let rate = settings.startRate / 2; usable(outcome) && !bestStep(outcome) && rate >= settings.minRate; rate /= 2) await tryRate(outcome, rate);
  }
  for (let refinement = 0; refinement < settings.refinements; refinement += 1) {
    for (const outcome of outcomes) {
      const best = bestStep(outcome);
      const failed = firstFailedAbove(outcome, best?.rate ?? 0);
      if (!usable(outcome) || !best || !failed) continue;
      const rate = Math.round(Math.sqrt(best.rate * failed.rate));
      if (rate > best.rate && rate < failed.rate) await tryRate(outcome, rate);
    }
  }
}

/** Runs one measurement; an exception (crash, dead client) marks the peer failed instead of ending the run. */
async function measure(outcome: PeerOutcome, work: (session: NonNullable<PeerOutcome['session']>) => Promise<StepResult>): Promise<StepResult | undefined> {
  const session = outcome.session;
  if (!session || outcome.failure !== undefined) return undefined;
  try {
    return await work(session);
  } catch (error) {
    outcome.failure = messageOf(error);
    return undefined;
  }
}

function count(rate: number, seconds: number): number {
  return Math.max(5, Math.round(rate * seconds));
}

