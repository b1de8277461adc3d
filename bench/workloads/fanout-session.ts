/**
 * One peer under fan-out load: its server process, a load client process holding the
 * subscribers, the publisher, and the sequence numbers. A session measures steps (publish
 * `count` events at `rate`, then see what every subscriber got) and never throws for what the
 * server did: losses, errors and closed sockets are part of the result, and a session that can
 * no longer be measured says why in `broken`.
 *
 * A workload with several sessions measures one at a time: `measureAlone` pauses the others'
 * server and load client (SIGSTOP) for the step, so an idle server's timers, keep-alives and
 * leftover backlog do not run during another's. Where a workload cannot pause them (a WAL
 * reader's replication connection would time out), every step reports what the other sessions'
 * processes used meanwhile (`bystandersBusy`).
 */
import type { SubscribePayload } from 'graphql-ws';
import type { PeerName } from '../peers/peer.ts';
import { waitUntilIdle, type PeerMemory, type PeerProcess } from '../lib/peer-process.ts';
import { startFanoutClient, type FanoutClient, type SocketSpread } from '../lib/fanout-client-process.ts';
import type { RedisInstance } from '../../test/helpers/redis.ts';
import { busyCores, processCpuMicros, sampleMachineCpu } from '../lib/cpu.ts';
import { clockMillis, FANOUT_SUBSCRIPTION } from '../lib/fanout-payload.ts';
import type { StepReport } from '../lib/fanout-protocol.ts';
import type { FrameCheckName } from '../lib/frame-checks.ts';
import { createPublisher, type Publisher, type PublishReport } from '../lib/publisher.ts';
import { describeProblem, formatCloses, offeredLoadShortfall } from './step-problems.ts';

export interface StepTolerance {
  /** The last event may arrive this long after it was due, at least, in ms. */
  readonly minDrainMs: number;
  /** …or this fraction of the step's duration, whichever is longer. */
  readonly drainFraction: number;
  /** How long to wait for stragglers before giving up on them, beyond the scheduled end, in ms. */
  readonly collectTimeoutMs: number;
  /**
   * What `collectTimeoutMs` counts from: the scheduled end, or when the last event was actually
   * sent (for a writer whose requests may take longer than the interval: it falls behind the
   * schedule by design, and its last events must still be waited for). @default 'schedule'
   */
  readonly waitFrom?: 'schedule' | 'lastSend';
}

export interface StepOptions {
  /** Events per second offered. */
  readonly rate: number;
  readonly count: number;
  /**
   * One publish in flight at a time: the events have one order, and every subscriber must
   * receive them in it. Otherwise up to `concurrency` publishes overlap (an open-loop load that
   * a slow server cannot slow down), and every subscriber must receive the same order.
   */
  readonly ordered: boolean;
  readonly tolerance: StepTolerance;
}

/** Publishes in flight at once in an unordered step. */
const CONCURRENCY = 32;
/** Probe rounds published (one at a time) until every subscription has received one. */
const MAX_PROBES = 40;
/** During a step, one frame in this many is matched whole against the frame check (a prime: it walks over the sockets). */
const CHECK_EVERY = 101;

/** What one step at one rate showed. */
export interface StepResult {
  /** Events per second offered. */
  readonly rate: number;
  readonly events: number;
  readonly subscribers: number;
  readonly publish: PublishReport;
  readonly client: StepReport;
  /** Messages received ÷ (first publish → last receipt + one publish interval). */
  readonly deliveredPerSecond: number;
  /** Server process CPU over the step, in µs. */
  readonly serverCpuMicros: number;
  /** Server process CPU over the step ÷ messages received, in µs. */
  readonly serverCpuPerMessage: number;
  /** The same for redis-server, in µs; undefined without one. */
  readonly redisCpuPerMessage: number | undefined;
  /** redis-server's CPU over the step, in µs; undefined without one. */
  readonly redisCpuMicros: number | undefined;
  /** Server CPU ÷ the step's wall time, in cores. */
  readonly serverBusy: number;
  /** The other sessions' servers and load clients (paused, or idle) over the step, in cores. */
  readonly bystandersBusy: number;
  /** Load client CPU ÷ the step's wall time, in cores: near 1, the client may be the limit. */
  readonly clientBusy: number;
  /** The whole machine's busy time ÷ the step's wall time, in cores (NaN without /proc/stat). */
  readonly machineBusy: number;
  /** What the machine spent on anything but the server, client, publisher and Redis, in cores: other tenants, kernel work. */
  readonly othersBusy: number;
  readonly ordered: boolean;
  /** Every subscriber received every event exactly once. */
  readonly lossless: boolean;
  /** Ordered step: every subscriber received the events in publish order; otherwise all in the same order. */
  readonly inOrder: boolean;
  /** Lossless, in order, no failed publish, and the last event arrived within the drain allowance. */
  readonly keptUp: boolean;
  /** Why it did not keep up; undefined when it did. */
  readonly problem: string | undefined;
  /** How late the last event may arrive after it was due, in ms: max(minDrainMs, drainFraction × the step). */
  readonly allowanceMs: number;
  /**
   * Why its figures are not those of the offered load — the publisher lagged, or the peer delivered
   * below the rate (`offeredLoadShortfall`) —; undefined when they are. Ratios with it are ✗.
   */
  readonly shortfall: string | undefined;
}

export interface MemoryResult {
  readonly before: PeerMemory;
  readonly after: PeerMemory;
  readonly connections: number;
}

/** What a burst showed (see `FanoutSession.burst`). */
export interface BurstResult<T> {
  /** What `send` resolved with. */
  readonly sent: T;
  readonly client: StepReport;
  /** Server process CPU from just before `send` until every subscriber had every event (or the wait ended), in µs. */
  readonly serverCpuMicros: number;
  /** The same for redis-server; undefined without one. */
  readonly redisCpuMicros: number | undefined;
}

export interface FanoutSession {
  readonly name: PeerName;
  readonly subscribers: number;
  memory: MemoryResult | undefined;
  /** Set once the session can no longer be measured (crash, closed sockets, an error, frames not as expected). */
  broken: string | undefined;
  /** Set when a frame was not what the frame check expects: the peer failed, not merely fell behind. */
  wrongFrames: string | undefined;
  /** The next sequence number the session will publish. */
  readonly nextSeq: number;
  /** Publishes `count` events at `rate` and reports what the subscribers got. */
  step(options: StepOptions): Promise<StepResult>;
  /**
   * Sends `count` events however `send` likes — e.g. all in one transaction — numbered from the
   * `firstSeq` it is given, then waits at most `timeoutMs` for every subscriber to have every one.
   */
  burst<T>(count: number, send: (firstSeq: number) => Promise<T>, timeoutMs: number): Promise<BurstResult<T>>;
  /** Waits until the server has finished a backlog: its CPU stays idle for a moment (bounded). */
  settle(maxMs: number): Promise<void>;
  /** Suspends the server and the load client (SIGSTOP), once the server is idle (up to `settleMs`). */
  pause(settleMs: number): Promise<void>;
  /** Resumes them (SIGCONT) and gives the server up to `settleMs` to run the timers that came due meanwhile. */
  resume(settleMs: number): Promise<void>;
  /** Closes the subscribers and the publisher's connections, then stops the server (unless `keepPeer`). Idempotent. */
  stop(): Promise<void>;
}

export interface SessionOptions {
  readonly peer: PeerProcess;
  readonly subscribers: number;
  /** The Redis the peer uses, for its CPU; undefined when it uses none. */
  readonly redis: RedisInstance | undefined;
  /** Time each probe waits for the subscribers, in ms. @default 250 */
  readonly probeWaitMs?: number;
  /** What every subscriber subscribes to, or subscriber i's at `i mod length`. @default FANOUT_SUBSCRIPTION */
  readonly subscription?: SubscribePayload | readonly SubscribePayload[];
  /** What every event frame must be (`frame-checks.ts`): a frame that is not fails the peer. @default none */
  readonly frameCheck?: FrameCheckName;
  /** `stop()` leaves the server running (the caller opens another session on it). @default false */
  readonly keepPeer?: boolean;
  /** The first sequence number (after another session's on the same server). @default 1 */
  readonly firstSeq?: number;
  /** The mutation's HTTP body per event (see `PublisherOptions.body`). @default publishBody */
  readonly body?: (seq: number, sentAt: number) => string;
  /** Frames containing this are dropped unread by the subscribers (`FanoutClient.open`). @default none */
  readonly ignore?: string;
  /**
   * What sends the events, instead of the HTTP publisher: e.g. `cdc`'s row writer, which
   * commits rows to the source database. The session closes it. @default createPublisher(peer url, body)
   */
  readonly publisher?: Publisher;
  /**
   * The subscribers spread over topics (socket i on topic `i mod topics`, event `seq` on topic
   * `seq mod topics`), each socket with its topic's `connection_init` payload: every probe round
   * then sends one event per topic. @default one topic, `{}`
   */
  readonly spread?: SocketSpread;
}

/** Every open session's server and load client pids: what the others' steps count as bystanders. */
const openSessions = new Map<FanoutSession, readonly number[]>();

/** CPU so far of the server and load client processes of every open session but `except`, in µs. */
async function bystanderCpuMicros(except: FanoutSession): Promise<number> {
  const pids = [...openSessions].filter(([session]) => session !== except).flatMap(([, ids]) => ids);
  const readings = await Promise.all(pids.map((pid) => processCpuMicros(pid)));
  return readings.reduce((sum, micros) => sum + (Number.isFinite(micros) ? micros : 0), 0);
}

/**
 * Samples the server's memory, opens the subscribers, publishes probes until every subscription
 * is live (the protocol does not acknowledge a `subscribe`; every probe frame is matched whole
 * against `frameCheck`), and samples the memory again. From then on the session owns the peer:
 * `stop()` stops it (unless `keepPeer`). If opening fails, the peer is left to the caller.
 */
export async function openSession(options: SessionOptions): Promise<FanoutSession> {
  const { peer, subscribers, redis } = options;
  const client: FanoutClient = startFanoutClient();
  const publisher: Publisher = options.publisher ?? createPublisher({ url: peer.httpUrl, ...(options.body && { body: options.body }) });
  const topics = options.spread?.topics ?? 1;
  let nextSeq = options.firstSeq ?? 1;
  let paused = false;
  /** CPU so far of the server and of redis-server (undefined without one), in µs. */
  const sampleCpu = () => Promise.all([peer.cpuMicros(), redis ? processCpuMicros(redis.pid) : undefined]);
  const spent = (before: Awaited<ReturnType<typeof sampleCpu>>, after: Awaited<ReturnType<typeof sampleCpu>>) => ({
    server: after[0] - before[0],
    redis: before[1] === undefined || after[1] === undefined ? undefined : after[1] - before[1],
  });
  /** Books frames not as expected: the peer failed (not merely fell behind). */
  const noteWrongFrames = (report: StepReport) => {
    if (report.mismatched === 0) return;
    session.wrongFrames ??= `${report.mismatched.toLocaleString('en-US')} frames not as expected, the first: ${report.firstMismatch ?? '?'}`;
    session.broken ??= session.wrongFrames;
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      openSessions.delete(session);
      publisher.close();
      // A server kept for another session must see its sockets close now (answer the closing
      // handshakes, free them), not while that session samples its memory.
      if (options.keepPeer) peer.resume();
      await client.stop();
      if (!options.keepPeer) await peer.stop();
    })());

  const session: FanoutSession = {
    name: peer.name,
    subscribers,
    memory: undefined,
    broken: undefined,
    wrongFrames: undefined,
    get nextSeq() {
      return nextSeq;
    },
    async step({ rate, count, ordered, tolerance }) {
      if (paused) throw new Error(`${peer.name}: step while paused`);
      const firstSeq = nextSeq;
      const lastSeq = firstSeq + count - 1;
      nextSeq = lastSeq + 1;
      const inFlight = ordered ? 1 : CONCURRENCY;
      await publisher.connect(inFlight);
      await client.expect(firstSeq, CHECK_EVERY);
      const [cpuBefore, bystandersBefore] = await Promise.all([sampleCpu(), bystanderCpuMicros(session)]);
      const wallStart = clockMillis();
      const machineBefore = sampleMachineCpu();
      const publisherCpuBefore = process.cpuUsage();
      const publish = await publisher.run({ firstSeq, count, rate, maxInFlight: inFlight });
      const durationMs = (count / rate) * 1000;
      const scheduledEnd = publish.startedAt + ((count - 1) / rate) * 1000;
      const waitFrom = tolerance.waitFrom === 'lastSend' ? Math.max(scheduledEnd, publish.lastSentAt) : scheduledEnd;
      const report = await client.collect(lastSeq, 'every', Math.max(0, waitFrom + tolerance.collectTimeoutMs - clockMillis()));
      const machineAfter = sampleMachineCpu();
      const publisherCpu = process.cpuUsage(publisherCpuBefore);
      const wallMs = clockMillis() - wallStart;
      const [cpuAfter, bystandersAfter] = await Promise.all([sampleCpu(), bystanderCpuMicros(session)]);
      const cpu = spent(cpuBefore, cpuAfter);
      const cores = (micros: number) => micros / (wallMs * 1000);
      const serverBusy = cores(cpu.server);
      const clientBusy = cores(report.clientCpuMicros);
      const redisBusy = cpu.redis === undefined ? 0 : cores(cpu.redis);
      const machineBusy = busyCores(machineBefore, machineAfter);

      const received = Math.max(1, report.received);
      const spanMs = report.received === 0 ? Number.NaN : report.lastReceiptAt - publish.startedAt + 1000 / rate;
      const lossless = report.complete === subscribers && report.sockets === subscribers && report.mismatched === 0;
      const inOrder = ordered ? report.outOfOrder === 0 : report.orders <= 1;
      const allowanceMs = Math.max(tolerance.minDrainMs, tolerance.drainFraction * durationMs);
      const drainMs = report.lastReceiptAt - scheduledEnd;
      const problem = describeProblem(report, publish, { subscribers, events: count, ordered, drainMs, allowanceMs });
      if (report.open < subscribers) session.broken ??= `the server closed ${subscribers - report.open} sockets (${formatCloses(report.closes)})`;
      noteWrongFrames(report);
      return {
        rate,
        events: count,
        subscribers,
        publish,
        client: report,
        deliveredPerSecond: (report.received / spanMs) * 1000,
        serverCpuMicros: cpu.server,
        serverCpuPerMessage: cpu.server / received,
        redisCpuPerMessage: cpu.redis === undefined ? undefined : cpu.redis / received,
        redisCpuMicros: cpu.redis,
        serverBusy,
        bystandersBusy: cores(bystandersAfter - bystandersBefore),
        clientBusy,
        machineBusy,
        othersBusy: Math.max(0, machineBusy - serverBusy - clientBusy - redisBusy - cores(publisherCpu.user + publisherCpu.system)),
        ordered,
        lossless,
        inOrder,
        keptUp: problem === undefined,
        problem,
        allowanceMs,
        shortfall: offeredLoadShortfall({ rate, events: count, publish, allowanceMs, problem }),
      };
    },
    async burst(count, send, timeoutMs) {
      if (paused) throw new Error(`${peer.name}: burst while paused`);
      const firstSeq = nextSeq;
      nextSeq += count;
      await client.expect(firstSeq, CHECK_EVERY);
      const cpuBefore = await sampleCpu();
      const sent = await send(firstSeq);
      const report = await client.collect(firstSeq + count - 1, 'every', timeoutMs);
      const cpu = spent(cpuBefore, await sampleCpu());
      if (report.open < subscribers) session.broken ??= `the server closed ${subscribers - report.open} sockets (${formatCloses(report.closes)})`;
      noteWrongFrames(report);
      return {
        sent,
        client: report,
        serverCpuMicros: cpu.server,
        redisCpuMicros: cpu.redis,
      };
    },
    async settle(maxMs) {
      if (!paused) await waitUntilIdle(peer, maxMs);
    },
    async pause(settleMs) {
      if (paused) return;
      await session.settle(settleMs);
      client.pause();
      peer.pause();
      paused = true;
    },
    async resume(settleMs) {
      if (!paused) return;
      peer.resume();
      client.resume();
      paused = false;
      await session.settle(settleMs);
    },
    stop,
  };

  try {
    const before = await peer.memory();
    const opened = await client.open({
      url: peer.url,
      sockets: subscribers,
      subscribe: options.subscription ?? FANOUT_SUBSCRIPTION,
      ...(options.ignore !== undefined && { ignore: options.ignore }),
      ...(options.spread !== undefined && { spread: options.spread }),
      ...(options.frameCheck !== undefined && { frameCheck: options.frameCheck }),
    });
    // Probes: every frame matched whole.
    await client.expect(nextSeq, 1);
    for (let probe = 0; ; probe += 1) {
      if (probe === MAX_PROBES) throw new Error(`${subscribers} subscriptions were not all live after ${probe} probe rounds`);
      // One probe per topic: every subscription waits for its own topic's.
      for (let topic = 0; topic < topics; topic += 1) await publisher.publishOne(nextSeq++);
      const seq = nextSeq - 1;
      const report = await client.collect(seq, 'last', options.probeWaitMs ?? 250);
      if (report.mismatched > 0) throw new Error(`${report.mismatched} probe frames not as expected, the first: ${report.firstMismatch ?? '?'}`);
      if (report.open < opened) throw new Error(`the server closed ${opened - report.open} sockets (${formatCloses(report.closes)})`);
      if (report.operationEnds.length > 0) throw new Error(`subscription ended: ${report.operationEnds[0]}`);
      if (report.sawLast === opened) break;
    }
    session.memory = { before, after: await peer.memory(), connections: opened };
    openSessions.set(session, [peer.pid, client.pid]);
    return session;
  } catch (error) {
    publisher.close();
    await client.stop();
    throw error;
  }
}

/**
 * Runs `work` on `active` with every other open session of `group` paused (SIGSTOP: server and
 * load client): an idle server's keep-alives, timers or leftover backlog would otherwise run
 * during `active`'s step. Each is paused once idle (up to `settleMs`); `active` is resumed and
 * given up to `settleMs` to run what came due while it was paused.
 */
export async function measureAlone<T>(
  group: readonly (FanoutSession | undefined)[],
  active: FanoutSession,
  settleMs: number,
  work: (session: FanoutSession) => Promise<T>,
): Promise<T> {
  for (const session of group) if (session && session !== active && openSessions.has(session)) await session.pause(settleMs);
  await active.resume(settleMs);
  return work(active);
}
