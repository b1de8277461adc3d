/**
 * Workload "roundtrip": the cost of one operation over an open, acknowledged socket — a
 * `subscribe` carrying `{ viewer { subject } }`, answered by `next` + `complete`. Measured
 * sequentially on one socket (pure per-operation latency) and with 50 sockets each keeping one
 * operation in flight (throughput under concurrency). Handshakes are outside the timed part.
 */
import type { SubscribePayload } from 'graphql-ws';
import { OURS, REFERENCE, type PeerName } from '../peers/peer.ts';
import { bootPeers } from '../lib/boot-peers.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { printRatioLine, printTable, print } from '../lib/report.ts';
import { alternateRounds } from '../lib/rounds.ts';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { formatMicros, formatPercent, formatRate, median, recordMillis, relativeSpread, summarize, type Summary } from '../lib/stats.ts';
import type { Workload, WorkloadContext } from '../lib/workload.ts';
import { closeLoadSockets, openLoadSockets, type LoadSocket } from '../lib/ws-load-client.ts';

/** Tributary against the stack it replaces (the fan-out floor `raw-ws` serves no queries). */
const PEERS: readonly PeerName[] = [OURS, REFERENCE];

const OPERATION: SubscribePayload = { query: '{ viewer { subject } }' };
/** Both peers answer as the same principal, so every response is the same bytes. */
const EXPECTED_SUBJECT = 'development';

export interface RoundtripSettings {
  /** Timed operations per phase, spread evenly over its sockets. */
  readonly operations: number;
  /** Untimed operations per phase before the timed ones (JIT, caches, socket buffers). */
  readonly warmup: number;
  /** Sockets of the concurrent phase, each with one operation in flight. */
  readonly concurrentSockets: number;
  /** A phase that takes longer than this fails instead of hanging, in ms. */
  readonly phaseTimeoutMs: number;
}

const FULL: RoundtripSettings = { operations: 5000, warmup: 500, concurrentSockets: 50, phaseTimeoutMs: 120_000 };
const QUICK: RoundtripSettings = { operations: 300, warmup: 50, concurrentSockets: 50, phaseTimeoutMs: 30_000 };

interface Phase {
  readonly name: string;
  readonly sockets: number;
}

interface PhaseResult {
  readonly opsPerSecond: number;
  /** Latency of each timed operation, in µs. */
  readonly latency: Summary;
  /** Server process CPU (user + system) over the timed part, per operation, in µs. */
  readonly serverCpuPerOp: number;
  /** This process's CPU over the timed part, per operation, in µs: is the client the bottleneck? */
  readonly clientCpuPerOp: number;
}

export const roundtrip: Workload = {
  name: 'roundtrip',
  description: 'one `{ viewer { subject } }` per subscribe → next + complete, over open sockets',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    const phases: Phase[] = [
      { name: 'sequential: 1 socket, one operation in flight', sockets: 1 },
      { name: `concurrent: ${settings.concurrentSockets} sockets, one operation in flight each`, sockets: settings.concurrentSockets },
    ];
    const peers = await startPeers(context);
    try {
      print(
        `${settings.operations.toLocaleString('en-US')} timed operations per phase after ${settings.warmup} warm-up; ` +
          `median of ${context.rounds} rounds, peers alternating (${PEERS.join(', ')}, …)`,
      );
      for (const peer of PEERS) await checkResponse(peerOf(peers, peer));

      const results = await alternateRounds(PEERS, context.rounds, async (name) => {
        const perPhase: PhaseResult[] = [];
        for (const phase of phases) perPhase.push(await measurePhase(peerOf(peers, name), phase, settings));
        return perPhase;
      });
      phases.forEach((phase, index) => report(phase, index, results));
    } finally {
      await Promise.all([...peers.values()].map((peer) => peer.stop()));
    }
  },
};

async function startPeers(context: WorkloadContext): Promise<Map<PeerName, PeerProcess>> {
  const booted = await bootPeers(context, PEERS);
  const peers = new Map<PeerName, PeerProcess>();
  for (const [index, name] of PEERS.entries()) {
    const peer = booted[index];
    if (typeof peer === 'string') throw new Error(`${name}: ${peer}`);
    if (peer) peers.set(name, peer);
  }
  return peers;
}

function peerOf(peers: ReadonlyMap<PeerName, PeerProcess>, name: PeerName): PeerProcess {
  const peer = peers.get(name);
  if (!peer) throw new Error(`peer ${name} is not running`);
  return peer;
}

/** Fails early if a peer answers something else than the others: the comparison would be void. */
async function checkResponse(peer: PeerProcess): Promise<void> {
  const sockets = await openLoadSockets(peer.url, 1);
  try {
    for (const socket of sockets) {
      const result = await socket.execute(OPERATION);
      const subject = (result.data as { viewer?: { subject?: unknown } } | undefined)?.viewer?.subject;
      if (subject !== EXPECTED_SUBJECT) throw new Error(`${peer.name} answered ${JSON.stringify(result)}`);
    }
  } finally {
    await closeLoadSockets(sockets);
  }
}

async function measurePhase(peer: PeerProcess, phase: Phase, settings: RoundtripSettings): Promise<PhaseResult> {
  const sockets = await openLoadSockets(peer.url, phase.sockets);
  try {
    await withDeadline(drive(sockets, Math.max(settings.warmup, phase.sockets)), settings.phaseTimeoutMs, `${peer.name} warm-up`);
    const latency = createHistogram();
    const serverCpuBefore = await peer.cpuMicros();
    const clientCpuBefore = process.cpuUsage();
    const start = performance.now();
    await withDeadline(drive(sockets, settings.operations, latency), settings.phaseTimeoutMs, `${peer.name} ${phase.name}`);
    const elapsedMs = performance.now() - start;
    const client = process.cpuUsage(clientCpuBefore);
    const serverCpu = (await peer.cpuMicros()) - serverCpuBefore;
    return {
      opsPerSecond: (settings.operations / elapsedMs) * 1000,
      latency: summarize(latency)!, // operations ≥ 1, all recorded
      serverCpuPerOp: serverCpu / settings.operations,
      clientCpuPerOp: (client.user + client.system) / settings.operations,
    };
  } finally {
    await closeLoadSockets(sockets);
  }
}

/** Runs `operations` spread evenly over the sockets, each socket strictly one at a time. */
async function drive(sockets: readonly LoadSocket[], operations: number, latency?: RecordableHistogram): Promise<void> {
  await Promise.all(
    sockets.map(async (socket, index) => {
      const share = Math.floor(operations / sockets.length) + (index < operations % sockets.length ? 1 : 0);
      for (let i = 0; i < share; i += 1) {
        const start = performance.now();
        const result = await socket.execute(OPERATION);
        const millis = performance.now() - start;
        if (result.errors) throw new Error(`operation failed: ${JSON.stringify(result.errors)}`);
        if (latency) recordMillis(latency, millis);
      }
    }),
  );
}

async function withDeadline<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function report(phase: Phase, index: number, results: ReadonlyMap<PeerName, PhaseResult[][]>): void {
  const medians = new Map<PeerName, MedianResult>();
  for (const [peer, rounds] of results) medians.set(peer, medianOfRounds(rounds.map((round) => round[index]!)));

  print();
  printTable({
    title: phase.name,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'ops/s' },
      { header: 'p50' },
      { header: 'p90' },
      { header: 'p99' },
      { header: 'max' },
      { header: 'server CPU/op' },
      { header: 'client CPU/op' },
      { header: 'ops/s spread' },
    ],
    rows: [...medians].map(([peer, m]) => [
      peer,
      formatRate(m.opsPerSecond),
      formatMicros(m.p50),
      formatMicros(m.p90),
      formatMicros(m.p99),
      formatMicros(m.max),
      formatMicros(m.serverCpuPerOp),
      formatMicros(m.clientCpuPerOp),
      formatPercent(m.opsPerSecondSpread),
    ]),
  });
  const ours = medians.get(OURS);
  for (const [peer, m] of medians) {
    if (peer === OURS || !ours) continue;
    printRatioLine(OURS, peer, [
      { metric: 'ops/s', value: ours.opsPerSecond / m.opsPerSecond },
      { metric: 'p50', value: ours.p50 / m.p50 },
      { metric: 'p99', value: ours.p99 / m.p99 },
      { metric: 'server CPU/op', value: ours.serverCpuPerOp / m.serverCpuPerOp },
    ]);
  }
}

interface MedianResult {
  readonly opsPerSecond: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly serverCpuPerOp: number;
  readonly clientCpuPerOp: number;
  /** (max − min) / median of ops/s over the rounds: how much to trust the row. */
  readonly opsPerSecondSpread: number;
}

function medianOfRounds(rounds: readonly PhaseResult[]): MedianResult {
  const of = (pick: (result: PhaseResult) => number) => median(rounds.map(pick));
  return {
    opsPerSecond: of((r) => r.opsPerSecond),
    p50: of((r) => r.latency.p50),
    p90: of((r) => r.latency.p90),
    p99: of((r) => r.latency.p99),
    max: of((r) => r.latency.max),
    serverCpuPerOp: of((r) => r.serverCpuPerOp),
    clientCpuPerOp: of((r) => r.clientCpuPerOp),
    opsPerSecondSpread: relativeSpread(rounds.map((r) => r.opsPerSecond)),
  };
}
