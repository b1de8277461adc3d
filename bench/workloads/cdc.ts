/**
 * Workload "cdc": database CDC end to end — a row committed to Postgres, timed to every
 * subscriber's `next` — for Tributary and the straightforward pipeline it replaces
 * (`pg-redis-graphql-ws`: pg-logical-replication → graphql-redis-subscriptions → graphql-ws).
 *
 * One private Postgres (logical WAL) and one private redis-server for the whole workload; each
 * peer its own table (the same shape), publication and, per group, slot. Every subscriber sends
 * the same `subscription { changes(model: "contacts") { operation model id record } }`; its token
 * (in `connection_init`) names its tenant, and a row reaches the subscribers of the tenant in its
 * `tenant_id`. The rows carry `seq` and `sentAt`, so the fan-out load client reads both from the
 * record in the raw frame, as it reads a published event.
 *
 * Groups, each with fresh servers (booted one at a time; boot not measured) and fresh slots:
 * - bulk: one subscriber per peer; one transaction of 100,000 rows (`--quick`: 10,000) per peer,
 *   one peer at a time: rows/s from the commit to the last row received, and the time from the
 *   commit until the peer's slot has confirmed it.
 * - 100 topics, then 1 topic: 1,000 subscribers (`--quick`: 100) spread over 100 tenants or all
 *   of one; single-row commits (one INSERT per transaction, one in flight) at 100 and 1,000/s
 *   (`--quick`: 100/s), after a warm-up, peers alternating over `--rounds`. A peer that does not
 *   deliver a step completely is stopped there (its backlog would steal the others' CPU) and
 *   not measured at higher rates of the group.
 */
import type { SubscribePayload } from 'graphql-ws';
import { startRedis, type RedisInstance } from '../../test/helpers/redis.ts';
import { CDC_REFERENCE, type PeerName } from '../peers/peer.ts';
import { bootPeers } from '../lib/boot-peers.ts';
import { messageOf, print } from '../lib/report.ts';
import { createRowWriter, type BulkCommit, type RowWriter } from '../lib/row-writer.ts';
import { formatMillis } from '../lib/stats.ts';
import type { Workload, WorkloadContext } from '../lib/workload.ts';
import { reportBulk, reportCommits, type BulkOutcome, type CommitOutcome, type CommitRound } from './cdc-report.ts';
import { configureTributary, MODEL, namesOf, peerEnvironment, startSourceDatabase, subscriberPayloads, type SourceDatabase } from './cdc-setup.ts';
import { openSession, type FanoutSession, type StepOptions, type StepTolerance } from './fanout-session.ts';
import { roundsPerRate, type RateRounds } from '../lib/rounds.ts';

/**
 * Tributary in Redis mode: the reference publishes through Redis pub/sub so that the WAL reader
 * and the socket servers may be separate instances; Redis mode is Tributary's deployment with
 * the same property (Redis Streams log and pub/sub, the reader elected through Redis). Such a
 * deployment keeps its platform database in Postgres, not embedded: here a database of its own
 * on the source's server (`DATABASE_URL`), whose backends' CPU is reported with the server's.
 */
const CDC_OURS: readonly PeerName[] = ['tributary-redis'];
const PEERS: readonly PeerName[] = [...CDC_OURS, CDC_REFERENCE];

const SUBSCRIPTION: SubscribePayload = {
  query: 'subscription Changes($model: String!) { changes(model: $model) { operation model id record } }',
  variables: { model: MODEL },
};

export interface CdcSettings {
  readonly subscribers: number;
  /** Topics (tenants) of the single-row groups, in run order: the one most likely overloaded last. */
  readonly topics: readonly number[];
  /** Commits per second, in run order. */
  readonly rates: readonly number[];
  /** Untimed load before each group's first rate, in commits/s and s. */
  readonly warmupRate: number;
  readonly warmupSeconds: number;
  /** Length of one timed measurement, in s. */
  readonly seconds: number;
  readonly tolerance: StepTolerance;
  /** Longest wait for a server to go idle after a step, before the next peer's, in ms. */
  readonly settleMs: number;
  /** Rows of the one big transaction. */
  readonly bulkRows: number;
  /** Longest wait for its last row, and for the slot, after the commit, in ms. */
  readonly bulkTimeoutMs: number;
}

const FULL: CdcSettings = {
  subscribers: 1000,
  topics: [100, 1],
  rates: [100, 1000],
  warmupRate: 50,
  warmupSeconds: 1,
  seconds: 5,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 10_000, waitFrom: 'lastSend' },
  settleMs: 3000,
  bulkRows: 100_000,
  bulkTimeoutMs: 120_000,
};

const QUICK: CdcSettings = {
  subscribers: 100,
  topics: [100, 1],
  rates: [100],
  warmupRate: 50,
  warmupSeconds: 0.5,
  seconds: 1.5,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 3000, waitFrom: 'lastSend' },
  settleMs: 1000,
  bulkRows: 10_000,
  bulkTimeoutMs: 30_000,
};

/** One peer in one group. */
interface Member {
  readonly name: PeerName;
  readonly slot: string;
  /** Tributary's platform database (on the source's server); undefined for the reference. */
  readonly platformDatabase: string | undefined;
  writer: RowWriter | undefined;
  session: FanoutSession | undefined;
  /** It could not be measured (it did not start, crashed, or a step threw). */
  failure: string | undefined;
  /** It is no longer measured in this group: why. */
  dropped: string | undefined;
}

interface Shared {
  readonly context: WorkloadContext;
  readonly settings: CdcSettings;
  readonly source: SourceDatabase;
  readonly redis: RedisInstance;
}

export const cdc: Workload = {
  name: 'cdc',
  description: 'row committed to Postgres → `changes(model:)` subscribers: latency, loss, CPU per commit; one big transaction',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    print(
      `peers: ${PEERS.join(', ')}; one Postgres (wal_level=logical, synchronous_commit=on, fsync=off) and one redis-server for all, ` +
        'each peer its own table, publication and slot; subscribers hold changes(model: "contacts") with a token of their tenant',
    );
    const started = performance.now();
    const [source, redis] = await Promise.all([startSourceDatabase(context), startRedis()]);
    context.defer(`redis-server :${redis.port}`, () => redis.dispose());
    for (const name of PEERS) await source.preparePeer(name);
    print(`postgres and redis-server ready in ${formatMillis(performance.now() - started)}`);
    const shared: Shared = { context, settings, source, redis };
    const failures: string[] = [];
    failures.push(...(await runBulk(shared)));
    for (const topics of settings.topics) failures.push(...(await runCommits(shared, topics)));
    if (failures.length > 0) throw new Error(`cdc: ${failures.join('; ')}`);
  },
};

/** Scenario B: one big transaction per peer, one peer at a time. */
async function runBulk(shared: Shared): Promise<string[]> {
  const { settings, source } = shared;
  const members = await startGroup(shared, 'bulk', 1, 1);
  const outcomes: BulkOutcome[] = [];
  try {
    for (const member of members) {
      const outcome: BulkOutcome = {
        name: member.name,
        rows: settings.bulkRows,
        failure: member.failure,
        result: undefined,
        commit: undefined,
        caughtUpAt: Number.NaN,
        platformCpuMicros: Number.NaN,
      };
      outcomes.push(outcome);
      const { session, writer } = member;
      if (!session || !writer || member.failure !== undefined) continue;
      try {
        await session.settle(settings.settleMs);
        const platformCpu = platformCpuOf(shared, member);
        const platformBefore = await platformCpu();
        const result = await session.burst(
          settings.bulkRows,
          async (firstSeq) => {
            const commit: BulkCommit = await writer.bulk(firstSeq, settings.bulkRows);
            // Polled while the rows are delivered.
            const caughtUp = source.waitForSlot(member.slot, commit.walLsn, settings.bulkTimeoutMs).catch(() => Number.NaN);
            return { commit, caughtUp };
          },
          settings.bulkTimeoutMs,
        );
        outcome.platformCpuMicros = (await platformCpu()) - platformBefore;
        outcome.result = result;
        outcome.commit = result.sent.commit;
        outcome.caughtUpAt = await result.sent.caughtUp;
        if (session.broken !== undefined) outcome.failure = session.broken;
      } catch (error) {
        outcome.failure = messageOf(error);
      }
    }
  } finally {
    await endGroup(shared, members);
  }
  return reportBulk(outcomes, CDC_OURS, CDC_REFERENCE);
}

/** Scenario A over `topics` tenants: single-row commits at each rate, peers alternating. */
async function runCommits(shared: Shared, topics: number): Promise<string[]> {
  const { context, settings } = shared;
  const members = await startGroup(shared, `t${topics}`, settings.subscribers, topics);
  const step = (rate: number, seconds: number): StepOptions => ({ rate, count: Math.max(5, Math.round(rate * seconds)), ordered: true, tolerance: settings.tolerance });
  let measured: RateRounds<PeerName, CommitRound>;
  try {
    for (const member of members) await measure(shared, member, step(settings.warmupRate, settings.warmupSeconds), 'the warm-up');
    measured = await roundsPerRate(members, settings.rates, context.rounds, (member, rate) => measure(shared, member, step(rate, settings.seconds), `${rate}/s`));
  } finally {
    await endGroup(shared, members);
  }
  const { results, skipped } = measured;
  const failures: string[] = [];
  for (const rate of settings.rates) {
    const outcomes: CommitOutcome[] = PEERS.map((name) => ({
      name,
      rounds: results.get(rate)?.get(name) ?? [],
      failure: members.find((member) => member.name === name)?.failure,
      skipped: skipped.get(rate)?.get(name),
    }));
    failures.push(...reportCommits(outcomes, { topics, subscribers: settings.subscribers, rate, seconds: settings.seconds, rounds: context.rounds }, CDC_OURS, CDC_REFERENCE));
  }
  return failures;
}

/**
 * One step; then the server is given time to go idle. A step not delivered completely stops
 * the peer for the rest of the group: its backlog would run on into the other peers' steps.
 */
async function measure(shared: Shared, member: Member, options: StepOptions, what: string): Promise<CommitRound | undefined> {
  const session = member.session;
  if (!session || member.failure !== undefined || member.dropped !== undefined) return undefined;
  try {
    const platformCpu = platformCpuOf(shared, member);
    const before = await platformCpu();
    const result = await session.step(options);
    const platformCpuMicros = (await platformCpu()) - before;
    if (session.broken !== undefined || !result.lossless) {
      member.dropped = `stopped after ${what}: ${session.broken ?? result.problem ?? 'not every row delivered'}`;
      await session.stop();
    } else await session.settle(shared.settings.settleMs);
    return { step: result, platformCpuMicros };
  } catch (error) {
    member.failure = messageOf(error);
    return undefined;
  }
}

/** Boots every peer, configures Tributary, then opens each peer's subscribers and probes them live. */
async function startGroup(shared: Shared, group: string, subscribers: number, topics: number): Promise<Member[]> {
  const { context, source, redis } = shared;
  const members: Member[] = PEERS.map((name) => {
    const { slot } = namesOf(name, group);
    // Tributary keeps its own state (raw changes, reader status) in its platform database.
    const platformDatabase = name === CDC_REFERENCE ? undefined : `${slot}_platform`;
    return { name, slot, platformDatabase, writer: undefined, session: undefined, failure: undefined, dropped: undefined };
  });
  print();
  const peers = await bootPeers(context, PEERS, {
    optionsOf: async (name) => {
      const platformDatabase = members.find((member) => member.name === name)?.platformDatabase;
      const platformUrl = platformDatabase === undefined ? undefined : await source.createDatabase(platformDatabase);
      return { env: peerEnvironment(name, group, source, redis.url, platformUrl) };
    },
    ready: (peer) => (peer.name === CDC_REFERENCE ? Promise.resolve() : configureTributary(peer, source, group)),
    label: `${group}: servers ready and streaming`,
  });
  const payloads = await subscriberPayloads(source.secret, topics);
  for (const [index, member] of members.entries()) {
    const peer = peers[index];
    if (typeof peer === 'string') member.failure = peer;
    if (typeof peer !== 'object') continue;
    const writer = createRowWriter({ databaseUrl: source.url, table: namesOf(member.name, group).table, topics });
    try {
      const session = await openSession({
        peer,
        subscribers,
        redis,
        subscription: SUBSCRIPTION,
        publisher: writer,
        spread: { topics, connectionPayloads: payloads },
        probeWaitMs: 500,
      });
      context.defer(`load client and server of ${member.name} (${group})`, () => session.stop());
      member.session = session;
      member.writer = writer;
    } catch (error) {
      writer.close();
      member.failure = `could not subscribe: ${messageOf(error)}`;
      await peer.stop();
    }
  }
  return members;
}

/** Stops the group's servers and load clients, then drops its slots. */
async function endGroup(shared: Shared, members: readonly Member[]): Promise<void> {
  await Promise.all(members.map((member) => member.session?.stop() ?? Promise.resolve()));
  for (const member of members) await shared.source.dropSlot(member.slot);
}

/** Reads the CPU of the Postgres backends serving the member's platform database (NaN: none). */
function platformCpuOf(shared: Shared, member: Member): () => Promise<number> {
  const database = member.platformDatabase;
  return database === undefined ? () => Promise.resolve(Number.NaN) : () => shared.source.databaseCpuMicros(database);
}

