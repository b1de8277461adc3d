/**
 * Workload "docs": mutation → subscriber latency of a sync document. N subscribers (one socket
 * each) hold `document(service: "bench", id: "d1")`; a writer sends `mergeDocument` with the
 * patch `{ seq, sentAt }` over HTTP POST at a fixed rate, one at a time; every subscriber's
 * `next` carries the merged data, so the fan-out load client reads `seq` and `sentAt` from the
 * raw frame as it does for `fanout` (Tributary's first `next` is a SNAPSHOT: dropped unread).
 *
 * Per N, every peer gets a fresh process (booted one at a time), its document is created, its
 * subscribers connect and probe mutations are sent until every subscription delivers; then an
 * untimed warm-up per peer, then the timed load, peers alternating over `--rounds`, each step with
 * the other peers' servers and load clients paused (`measureAlone`). Latency counts from when each
 * mutation was due (`publisher.ts`), and every frame is checked against the document change it
 * should be (`frame-checks.ts`). The same
 * load client (`lib/fanout-client.ts`) and writer (`lib/publisher.ts`) for every peer, each in a
 * process of its own, through `fanout-session.ts`.
 */
import type { SubscribePayload } from 'graphql-ws';
import { startRedis, type RedisInstance } from '../../test/helpers/redis.ts';
import { OURS, REDIS_PEERS, REFERENCE, type PeerName } from '../peers/peer.ts';
import { graphqlData } from '../lib/graphql-http.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { bootPeers } from '../lib/boot-peers.ts';
import { messageOf, notComparable, printRatioLine, printTable, print } from '../lib/report.ts';
import { formatMicros } from '../lib/stats.ts';
import type { Workload, WorkloadContext } from '../lib/workload.ts';
import { summarizeRounds } from './rounds-summary.ts';
import { measureAlone, openSession, type FanoutSession, type StepResult, type StepTolerance } from './fanout-session.ts';

/** Tributary's three document paths, against the stack it replaces (`raw-ws` has no documents). */
const OURS_PEERS: readonly PeerName[] = [OURS, 'tributary-redis', 'tributary-redis-async'];
const PEERS: readonly PeerName[] = [...OURS_PEERS, REFERENCE];

const SERVICE = 'bench';
const DOCUMENT_ID = 'd1';

const SUBSCRIPTION: SubscribePayload = {
  query: 'subscription Doc($service: String!, $id: ID!) { document(service: $service, id: $id) { operation revision data } }',
  variables: { service: SERVICE, id: DOCUMENT_ID },
};

const MERGE_QUERY = 'mutation Merge($service: String!, $id: ID!, $patch: JSON!) { mergeDocument(service: $service, id: $id, patch: $patch) { revision } }';
const CREATE_QUERY = 'mutation Create($service: String!, $id: ID!, $data: JSON!) { createDocument(service: $service, id: $id, data: $data) { revision } }';

/** Tributary's first `next` of a `document` subscription: the state before any change, not an event. */
const SNAPSHOT_MARKER = '"SNAPSHOT"';

/** The writer's HTTP body for change `seq`: the patch `{ seq, sentAt }` (what the subscribers read back). */
function mergeBody(seq: number, sentAt: number): string {
  return `{"query":${JSON.stringify(MERGE_QUERY)},"variables":{"service":"${SERVICE}","id":"${DOCUMENT_ID}","patch":{"seq":${seq},"sentAt":${sentAt.toFixed(3)}}}}`;
}

export interface DocsSettings {
  /** Subscribers of the one document, one table each. */
  readonly sizes: readonly number[];
  /** Mutations per second, one in flight at a time. */
  readonly rate: number;
  /** Untimed load before anything is measured, in s. */
  readonly warmupSeconds: number;
  /** Length of one timed measurement, in s. */
  readonly seconds: number;
  readonly tolerance: StepTolerance;
}

const FULL: DocsSettings = {
  sizes: [100, 1000],
  rate: 50,
  warmupSeconds: 1,
  seconds: 5,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 5000, waitFrom: 'lastSend' },
};

const QUICK: DocsSettings = {
  sizes: [100],
  rate: 50,
  warmupSeconds: 0.5,
  seconds: 1.5,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 2000, waitFrom: 'lastSend' },
};

/** One peer at one N. */
interface DocsOutcome {
  readonly name: PeerName;
  readonly subscribers: number;
  peer: PeerProcess | undefined;
  session: FanoutSession | undefined;
  failure: string | undefined;
  readonly rounds: StepResult[];
}

export const docs: Workload = {
  name: 'docs',
  description: '`mergeDocument` over HTTP → N `document` subscribers: latency, mutation time, zero loss',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    const count = Math.round(settings.rate * settings.seconds);
    print(
      `one document, ${settings.sizes.map((size) => size.toLocaleString('en-US')).join(' and ')} subscribers; ` +
        `mergeDocument { seq, sentAt } at ${settings.rate}/s, one in flight, ${count} timed × ${context.rounds} rounds ` +
        `after ${settings.warmupSeconds} s warm-up; peers alternating (${PEERS.join(', ')}, …)`,
    );
    print(
      'tributary: documents in its database (embedded Postgres, PGlite), written before publishing; ' +
        'tributary-redis: Redis hot cache, answers after the database has the change (SYNC_DURABILITY=sync); ' +
        'tributary-redis-async: answers once Redis has it, the database follows (async); yoga-graphql-ws keeps documents in memory',
    );
    const redis = await startRedis();
    context.defer(`redis-server :${redis.port}`, () => redis.dispose());
    const failures: string[] = [];
    for (const size of settings.sizes) {
      const group = await startPeers(context, size, redis.url);
      try {
        for (const outcome of group) await open(context, group, outcome, redisOf(outcome.name, redis));
        const step = (seconds: number) => ({ rate: settings.rate, count: Math.max(5, Math.round(settings.rate * seconds)), ordered: true, tolerance: settings.tolerance });
        for (const outcome of group) await measure(group, outcome, step(settings.warmupSeconds));
        for (let round = 0; round < context.rounds; round += 1) {
          for (const outcome of group) {
            const result = await measure(group, outcome, step(settings.seconds));
            if (result) outcome.rounds.push(result);
          }
        }
      } finally {
        // Frees this N's sockets and servers before the next N is measured.
        await Promise.all(group.map(async (outcome) => (outcome.session ? outcome.session.stop() : outcome.peer?.stop())));
      }
      failures.push(...report(group, settings, context.rounds));
    }
    if (failures.length > 0) throw new Error(`docs: ${failures.join('; ')}`);
  },
};

/** Starts a fresh server per peer for one N. */
async function startPeers(context: WorkloadContext, subscribers: number, redisUrl: string): Promise<DocsOutcome[]> {
  const booted = await bootPeers(context, PEERS, { optionsOf: (name) => (REDIS_PEERS.includes(name) ? { env: { REDIS_URL: redisUrl } } : {}) });
  return PEERS.map((name, index) => {
    const peer = booted[index];
    return { name, subscribers, peer: typeof peer === 'object' ? peer : undefined, session: undefined, failure: typeof peer === 'string' ? peer : undefined, rounds: [] };
  });
}

/**
 * The redis-server whose CPU counts with the peer's: the one it keeps its documents' hot cache and
 * its log in (the two Redis peers share it: what the idle one asks of it meanwhile counts too);
 * none for the others. Without it, a Redis peer's CPU per mutation left out the work it hands to
 * Redis, against yoga, which has none to hand.
 */
export function redisOf(name: PeerName, redis: RedisInstance): RedisInstance | undefined {
  return REDIS_PEERS.includes(name) ? redis : undefined;
}

/** Longest wait for a server to go idle before it is paused, or after it is resumed, in ms. */
const SETTLE_MS = 2000;

/** The sessions of a group: the ones `measureAlone` pauses while another is measured. */
const sessionsOf = (group: readonly DocsOutcome[]) => group.map((outcome) => outcome.session);

/**
 * Creates the document, opens the subscribers and probes until every subscription delivers (the
 * other peers' sessions paused meanwhile).
 */
async function open(context: WorkloadContext, group: readonly DocsOutcome[], outcome: DocsOutcome, redis: RedisInstance | undefined): Promise<void> {
  const peer = outcome.peer;
  if (!peer || outcome.failure !== undefined) return;
  try {
    for (const session of sessionsOf(group)) await session?.pause(SETTLE_MS);
    await createDocument(peer);
    const session = await openSession({
      peer,
      subscribers: outcome.subscribers,
      redis,
      subscription: SUBSCRIPTION,
      body: mergeBody,
      ignore: SNAPSHOT_MARKER,
      frameCheck: 'document-change',
    });
    context.defer(`load client and server of ${outcome.name} (N=${outcome.subscribers})`, () => session.stop());
    outcome.session = session;
  } catch (error) {
    outcome.failure = `could not subscribe: ${messageOf(error)}`;
    await peer.stop();
  }
}

/** `createDocument(service: "bench", id: "d1", data: {})` over HTTP: `mergeDocument` needs the document to exist. */
async function createDocument(peer: PeerProcess): Promise<void> {
  await graphqlData(peer.httpUrl, CREATE_QUERY, { service: SERVICE, id: DOCUMENT_ID, data: {} }, { timeoutMs: 10_000 });
}

/**
 * Runs one step with the other peers paused; an exception (crash, dead client) marks the peer
 * failed instead of ending the run, and so does a frame that was not what it should be.
 */
async function measure(group: readonly DocsOutcome[], outcome: DocsOutcome, step: Parameters<FanoutSession['step']>[0]): Promise<StepResult | undefined> {
  const session = outcome.session;
  if (!session || outcome.failure !== undefined) return undefined;
  try {
    const result = await measureAlone(sessionsOf(group), session, SETTLE_MS, (active) => active.step(step));
    if (session.broken !== undefined) outcome.failure = session.broken;
    return result;
  } catch (error) {
    outcome.failure = messageOf(error);
    return undefined;
  }
}

/** Prints one N's table and ratio line; returns what makes the run fail (a peer not measured, ours losing changes). */
function report(group: readonly DocsOutcome[], settings: DocsSettings, rounds: number): string[] {
  const failures: string[] = [];
  const size = group[0]?.subscribers ?? 0;
  const summaries = new Map(group.map((outcome) => [outcome.name, summarizeRounds(outcome.rounds)]));
  print();
  printTable({
    title:
      `${size.toLocaleString('en-US')} subscribers of one document: mergeDocument at ${settings.rate}/s ` +
      `(${(settings.rate * size).toLocaleString('en-US')} msgs/s) for ${settings.seconds} s; median of ${rounds} rounds`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'mutations/s' },
      { header: 'mut→sub p50' },
      { header: 'mut→sub p99' },
      { header: 'mutation p50' },
      { header: 'mutation p99' },
      { header: 'delivered/expected' },
      { header: 'server CPU/mutation' },
      { header: 'Redis' },
      { header: 'zero loss', align: 'left' },
    ],
    rows: group.map((outcome) => {
      const m = summaries.get(outcome.name);
      if (!m) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', `✗ ${outcome.failure ?? 'not measured'}`];
      const verdict = m.zeroLoss ? '✓' : `✗ ${m.problem ?? '?'}`;
      return [
        outcome.name,
        m.achieved.toFixed(1),
        formatMicros(m.p50),
        formatMicros(m.p99),
        formatMicros(m.answeredP50),
        formatMicros(m.answeredP99),
        `${m.delivered.toLocaleString('en-US')}/${m.expected.toLocaleString('en-US')}`,
        formatMicros(m.cpuPerEvent),
        formatMicros(m.redisCpuPerEvent),
        outcome.failure === undefined ? verdict : `${verdict}; then failed: ${outcome.failure}`,
      ];
    }),
    notes: [
      `mutations/s: sent, one in flight; below ${settings.rate} when the mutation takes longer than the interval (the writer waits for each answer): the peer then did not get the offered load, and its ratios are ✗`,
      'mut→sub: mutation due (its place in the schedule, however late the writer got to send it) → subscriber received its `next` (clocks of two processes on one machine); mutation: sent → HTTP response',
      'every frame begins as a document UPDATED frame of subscription "0" and a sample (every probe) is matched whole' +
        ` (frame-checks.ts); the other peers' servers and load clients are paused (SIGSTOP) during each step: they used ${formatCores(maxBystanders(group))} cores at most`,
      'delivered/expected: changes received by all subscribers over all rounds; zero loss: every subscriber got every change exactly once, in order',
      'server CPU/mutation: server process CPU over the timed part ÷ mutations (the fan-out to every subscriber included); ' +
        'Redis: redis-server over the same part ÷ mutations, for the peers that use it (one redis-server for both Redis peers; the one not measured is paused, so it asks nothing of it meanwhile)',
    ],
  });
  for (const outcome of group) {
    if (outcome.failure !== undefined) failures.push(`${outcome.name} (N=${size}): ${outcome.failure}`);
    else if (OURS_PEERS.includes(outcome.name) && summaries.get(outcome.name)?.zeroLoss === false) {
      failures.push(`${outcome.name} (N=${size}) failed the zero-loss check: ${summaries.get(outcome.name)?.problem ?? '?'}`);
    }
  }
  const peer = summaries.get(REFERENCE);
  for (const name of OURS_PEERS) {
    const ours = summaries.get(name);
    if (!ours || !peer) continue;
    // Measured under another load than offered (a writer that lagged, a backlog): not comparable.
    const invalid = notComparable(name, ours.shortfall, REFERENCE, peer.shortfall);
    printRatioLine(name, REFERENCE, [
      { metric: 'mut→sub p50', value: ours.p50 / peer.p50, invalid },
      { metric: 'p99', value: ours.p99 / peer.p99, invalid },
      { metric: 'mutation p50', value: ours.answeredP50 / peer.answeredP50, invalid },
      { metric: 'p99', value: ours.answeredP99 / peer.answeredP99, invalid },
      { metric: 'server CPU/mutation', value: ours.cpuPerEvent / peer.cpuPerEvent, invalid },
      // What the mutation costs with Redis's share, for the peers that hand work to it (yoga has none).
      ...(Number.isFinite(ours.redisCpuPerEvent) ? [{ metric: 'server+Redis CPU/mutation', value: (ours.cpuPerEvent + ours.redisCpuPerEvent) / peer.cpuPerEvent, invalid }] : []),
    ]);
  }
  return failures;
}

/** The most the paused peers' processes used during one step, in cores. */
function maxBystanders(group: readonly DocsOutcome[]): number {
  return Math.max(0, ...group.flatMap((outcome) => outcome.rounds.map((round) => round.bystandersBusy)).filter(Number.isFinite));
}

function formatCores(cores: number): string {
  return cores.toFixed(2);
}
