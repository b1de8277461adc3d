/**
 * Workload "outbox": events an application commits into its outbox table, end to end.
 *
 * 1. Latency, commit → subscriber: three arms, each a Tributary of its own (in-memory log, its
 *    platform database on the private Postgres) reading one table of an application database of
 *    its own (so no arm's reader is sent another arm's rows) —
 *    `outbox-poll` (`setOutboxSource(…, mode: POLL)`), `outbox-wal` (`mode: WAL`) and `cdc` (a row
 *    mapping on an ordinary table, the baseline). Every commit is a transaction of the application:
 *    one INSERT (`enqueueOutboxEvent` for the outbox arms) carrying `seq` and the time it was
 *    sent; one subscriber per tenant holds `events(topic: "bench.commits")` with a token
 *    of its tenant, and the fan-out load client reads both from the raw frame. Rates 100 and
 *    1,000/s (`--quick`: 100/s), arms alternating over `--rounds` after a warm-up; an arm that did
 *    not deliver a step completely is stopped there. A server without WAL mode reports the WAL arm
 *    as unavailable instead of failing the run.
 * 2. Drain: a backlog of 100,000 rows (`--quick`: 10,000) routed by the seed's naive poller and by
 *    1, 2 and 4 instances of the real one (`outbox-drain.ts`, after an untimed warm-up), once the
 *    arms are stopped and their slots dropped, so no reader decodes the drain's WAL; every
 *    configuration once per `--rounds` (`--quick`: once), the order reversed every other round,
 *    compared with the naive poller of its round.
 */
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import { createCommitWriter } from '../lib/commit-writer.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { messageOf, print } from '../lib/report.ts';
import { formatMillis } from '../lib/stats.ts';
import { skip, type Workload, type WorkloadContext } from '../lib/workload.ts';
import { startSourceDatabase, type SourceDatabase } from './cdc-setup.ts';
import { openSession, type FanoutSession, type StepOptions, type StepResult, type StepTolerance } from './fanout-session.ts';
import { runDrain, type DrainSettings } from './outbox-drain.ts';
import { reportDrain, reportLatency, type ArmOutcome } from './outbox-report.ts';
import {
  ARMS,
  BASELINE,
  configureArm,
  dropAllSlots,
  EVENTS_SUBSCRIPTION,
  insertOf,
  namesOf,
  prepareArmDatabases,
  subscriberPayloads,
  WalModeUnavailable,
  type ArmName,
} from './outbox-setup.ts';
import { roundsPerRate, type RateRounds } from '../lib/rounds.ts';

export interface OutboxSettings {
  /** Tenants, one subscriber each; row `seq` belongs to tenant `seq mod tenants`. */
  readonly tenants: number;
  /** Commits per second, in run order. */
  readonly rates: readonly number[];
  /** Untimed load before the first rate, in commits/s and s. */
  readonly warmupRate: number;
  readonly warmupSeconds: number;
  /** Length of one timed measurement, in s. */
  readonly seconds: number;
  readonly tolerance: StepTolerance;
  /** Longest wait for a server to go idle after a step, before the next arm's, in ms. */
  readonly settleMs: number;
  /** The drain's rounds are `--rounds` (one with `--quick`). */
  readonly drain: Omit<DrainSettings, 'rounds'>;
}

/** The servers' poll interval: OUTBOX_POLL_INTERVAL_MS's default, which the peers run with. */
const POLL_INTERVAL_MS = loadConfig({}).outbox.pollIntervalMs;

const FULL: OutboxSettings = {
  tenants: 10,
  rates: [100, 1000],
  warmupRate: 50,
  warmupSeconds: 1,
  seconds: 5,
  // Polling delivers up to an interval after the commit: wait well beyond it before counting a row lost.
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: POLL_INTERVAL_MS + 4000, waitFrom: 'lastSend' },
  settleMs: 3000,
  drain: { rows: 100_000, entities: 1000, tenants: 10, timeoutMs: 120_000 },
};

const QUICK: OutboxSettings = {
  tenants: 10,
  rates: [100],
  warmupRate: 50,
  warmupSeconds: 0.5,
  seconds: 1.5,
  tolerance: { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: POLL_INTERVAL_MS + 2000, waitFrom: 'lastSend' },
  settleMs: 1000,
  drain: { rows: 10_000, entities: 1000, tenants: 10, timeoutMs: 30_000 },
};

/** One arm: its server and subscribers while it is measured. */
interface Member {
  readonly name: ArmName;
  /** The mode its server reported in effect. */
  mode: string | undefined;
  session: FanoutSession | undefined;
  /** `WAL mode unavailable: …` */
  unavailable: string | undefined;
  /** It could not be measured (it did not start, crashed, or a step threw). */
  failure: string | undefined;
  /** It is no longer measured: why. */
  dropped: string | undefined;
}

interface Shared {
  readonly context: WorkloadContext;
  readonly settings: OutboxSettings;
  readonly source: SourceDatabase;
  /** Each arm's application database URL. */
  readonly databases: ReadonlyMap<ArmName, string>;
}

export const outbox: Workload = {
  name: 'outbox',
  description: 'outbox row committed → `events(topic:)` subscriber, polled and from the WAL, against CDC; drain rate of a backlog by 1, 2, 4 pollers and the naive one',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    print(
      `arms: ${ARMS.join(', ')} (baseline), each its own Tributary (in-memory log, platform database on the same Postgres, OUTBOX_POLL_INTERVAL_MS=${POLL_INTERVAL_MS}); ` +
        'one Postgres (wal_level=logical, synchronous_commit=on, fsync=off), each arm its own application database and table; subscribers hold events(topic: "bench.commits") with a token of their tenant',
    );
    const started = performance.now();
    const source = await startSourceDatabase(context);
    const admin = new pg.Client({ connectionString: source.url, application_name: 'bench-outbox-admin' });
    admin.on('error', () => {});
    await admin.connect();
    context.defer('postgres admin connection (outbox)', () => admin.end());
    const databases = await prepareArmDatabases(source);
    print(`postgres ready in ${formatMillis(performance.now() - started)}`);

    const shared: Shared = { context, settings, source, databases };
    const failures = await runLatency(shared);
    // The arms' readers are stopped: their slots would only keep WAL (or decode it) from now on.
    await dropAllSlots(admin, source);

    print();
    // As the webhooks drain: one round when quick, the ratios still taken within it.
    const drain: DrainSettings = { ...settings.drain, rounds: context.quick ? 1 : context.rounds };
    print(
      `drain: ${drain.rows.toLocaleString('en-US')} rows per configuration, pollers in this process; ` +
        `${drain.rounds} round${drain.rounds === 1 ? '' : 's'}, the order reversed every other round`,
    );
    const outcomes = await runDrain(source, drain);
    failures.push(...reportDrain(outcomes, drain));
    if (failures.length > 0) throw new Error(`outbox: ${failures.join('; ')}`);
  },
};

/** Commit → subscriber latency at each rate, arms alternating. */
async function runLatency(shared: Shared): Promise<string[]> {
  const { context, settings } = shared;
  const members = await startArms(shared);
  // A poller delivers up to an interval after the commit by design: that is its latency, not a
  // backlog, so its last row may come an interval later than another arm's before it counts as one.
  const step = (member: Member, rate: number, seconds: number): StepOptions => ({
    rate,
    count: Math.max(5, Math.round(rate * seconds)),
    ordered: true,
    tolerance: member.name === 'outbox-poll' ? { ...settings.tolerance, minDrainMs: settings.tolerance.minDrainMs + POLL_INTERVAL_MS } : settings.tolerance,
  });
  let measured: RateRounds<ArmName, StepResult>;
  try {
    for (const member of members) await measure(shared, member, step(member, settings.warmupRate, settings.warmupSeconds), 'the warm-up');
    const available = members.filter((member) => member.unavailable === undefined);
    measured = await roundsPerRate(available, settings.rates, context.rounds, (member, rate) => measure(shared, member, step(member, rate, settings.seconds), `${rate}/s`));
  } finally {
    await Promise.all(members.map((member) => member.session?.stop() ?? Promise.resolve()));
  }
  const { results, skipped } = measured;
  const failures: string[] = [];
  for (const rate of settings.rates) {
    const outcomes: ArmOutcome[] = members.map((member) => ({
      name: member.name,
      rounds: results.get(rate)?.get(member.name) ?? [],
      mode: member.mode,
      unavailable: member.unavailable,
      failure: member.failure,
      skipped: skipped.get(rate)?.get(member.name),
    }));
    failures.push(...reportLatency(outcomes, { tenants: settings.tenants, rate, seconds: settings.seconds, rounds: context.rounds, pollIntervalMs: POLL_INTERVAL_MS }, BASELINE));
  }
  return failures;
}

/**
 * One step; then the server is given time to go idle. A step not delivered completely stops the
 * arm: its backlog would run on into the other arms' steps.
 */
async function measure(shared: Shared, member: Member, options: StepOptions, what: string): Promise<StepResult | undefined> {
  const session = member.session;
  if (!session || member.failure !== undefined || member.dropped !== undefined) return undefined;
  try {
    const result = await session.step(options);
    if (session.broken !== undefined || !result.lossless) {
      member.dropped = `stopped after ${what}: ${session.broken ?? result.problem ?? 'not every row delivered'}`;
      await session.stop();
    } else await session.settle(shared.settings.settleMs);
    return result;
  } catch (error) {
    member.failure = messageOf(error);
    return undefined;
  }
}

/**
 * Boots each arm's server, one at a time, and configures its source as an administrator would;
 * then opens each arm's subscribers and probes them live. Boot is printed, never measured.
 */
async function startArms(shared: Shared): Promise<Member[]> {
  const { context, settings, source, databases } = shared;
  const databaseOf = (arm: ArmName): string => {
    const url = databases.get(arm);
    if (url === undefined) throw new Error(`${arm}: no application database`);
    return url;
  };
  const members: Member[] = ARMS.map((name) => ({ name, mode: undefined, session: undefined, unavailable: undefined, failure: undefined, dropped: undefined }));
  const peers = new Map<ArmName, PeerProcess>();
  const boots: string[] = [];
  print();
  for (const member of members) {
    const started = performance.now();
    let peer: PeerProcess | undefined;
    try {
      const platformUrl = await source.createDatabase(namesOf(member.name).platformDatabase);
      peer = await context.startPeer('tributary', { startTimeoutMs: 120_000, env: { JWT_SECRET: source.secret, DATABASE_URL: platformUrl } });
      member.mode = await configureArm(peer, member.name, { url: databaseOf(member.name), secret: source.secret });
      boots.push(`${member.name} ${formatMillis(performance.now() - started)}`);
      peers.set(member.name, peer);
    } catch (error) {
      await peer?.stop();
      if (error instanceof WalModeUnavailable) member.unavailable = `WAL mode unavailable: ${error.message}`;
      else member.failure = `could not start: ${messageOf(error)}`;
    }
  }
  print(`servers ready and reading their sources (one at a time; boot not measured): ${boots.join(', ')}`);
  // Not measured: a gap in the run (exit 1 unless --allow-skip), not a failure of the arm.
  for (const member of members) if (member.unavailable !== undefined) skip(context, `outbox: ${member.name}`, member.unavailable);

  const payloads = await subscriberPayloads(source.secret, settings.tenants);
  for (const member of members) {
    const peer = peers.get(member.name);
    if (!peer) continue;
    const writer = createCommitWriter({ databaseUrl: databaseOf(member.name), insert: insertOf(member.name, settings.tenants), applicationName: `bench-${member.name}` });
    try {
      const session = await openSession({
        peer,
        subscribers: settings.tenants,
        redis: undefined,
        subscription: EVENTS_SUBSCRIPTION,
        publisher: writer,
        spread: { topics: settings.tenants, connectionPayloads: payloads },
        // A polled probe arrives up to an interval later.
        probeWaitMs: POLL_INTERVAL_MS + 500,
      });
      context.defer(`load client and server of ${member.name}`, () => session.stop());
      member.session = session;
    } catch (error) {
      writer.close();
      member.failure = `could not subscribe: ${messageOf(error)}`;
      await peer.stop();
    }
  }
  return members;
}
