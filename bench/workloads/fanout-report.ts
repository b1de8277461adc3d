/**
 * The fan-out workload's tables: fixed load, saturation, memory, then the ratios of ours to the
 * reference stack and to the floor. Reads the outcomes only; returns the failures that make the
 * run fail (a peer that could not be measured, or ours losing messages at the fixed load).
 */
import os from 'node:os';
import { LIMIT, OURS, REFERENCE, type PeerName } from '../peers/peer.ts';
import type { PeerMemory } from '../lib/peer-process.ts';
import { print, printRatioLine, printTable, type Ratio } from '../lib/report.ts';
import { formatMicros, formatPercent, formatRate, median } from '../lib/stats.ts';
import type { FanoutSession, StepResult, StepTolerance } from './fanout-session.ts';

export interface FanoutSettings {
  readonly subscribers: number;
  /** Events per second of the fixed load (× subscribers = messages per second). */
  readonly fixedRate: number;
  /** Untimed load at the fixed rate before anything is measured, in s. */
  readonly warmupSeconds: number;
  /** Length of one fixed-load measurement, in s. */
  readonly fixedSeconds: number;
  /** First rate of the saturation search, in events/s; halved instead when a peer cannot keep up with it. */
  readonly startRate: number;
  /** The search stops doubling here, in events/s. */
  readonly maxRate: number;
  /** …and stops halving here. */
  readonly minRate: number;
  /** Length of one saturation step, in s. */
  readonly stepSeconds: number;
  /** Bisections between the last rate kept up with and the first not. */
  readonly refinements: number;
  /**
   * Further tries of a rate a peer did not keep up with before it counts as beyond it: other
   * tenants of a shared machine can steal a step's CPU; a real limit fails every time.
   */
  readonly retries: number;
  readonly tolerance: StepTolerance;
  /** Longest wait for a server to finish a backlog after a step it did not keep up with, in ms. */
  readonly settleMs: number;
}

/** Everything measured for one peer. */
export interface PeerOutcome {
  readonly name: PeerName;
  session: FanoutSession | undefined;
  /** Why the peer could not be (fully) measured: a crash, an error, sockets it closed. */
  failure: string | undefined;
  /** Why it was not run at all (e.g. no redis-server): not a failure. */
  skipped: string | undefined;
  /** One fixed-load result per round. */
  readonly fixed: StepResult[];
  /** Saturation steps in the order run. */
  readonly steps: StepResult[];
}

/** Ours in both modes: the rows the ratio lines start from. */
const OURS_PEERS: readonly PeerName[] = [OURS, 'tributary-redis'];
/** A load client busier than this many cores was (close to) the limit itself. */
const CLIENT_BOUND = 0.9;
/** A machine busier than this share of its cores was (close to) the limit itself. */
const MACHINE_BOUND = 0.95;

const BUSY_COLUMNS = [{ header: 'server' }, { header: 'client' }, { header: 'others' }] as const;
const BUSY_NOTE =
  `server, client, others: cores busy over the step — the server process, the load client, and everything else on the ` +
  `machine but the publisher and Redis (other tenants, kernel); the machine has ${os.cpus().length}`;

/** The highest rate a peer kept up with in the saturation search. */
export function bestStep(outcome: PeerOutcome): StepResult | undefined {
  let best: StepResult | undefined;
  for (const step of outcome.steps) if (step.keptUp && (!best || step.rate > best.rate)) best = step;
  return best;
}

/** The lowest rate above `rate` a peer did not keep up with. */
export function firstFailedAbove(outcome: PeerOutcome, rate: number): StepResult | undefined {
  let failed: StepResult | undefined;
  for (const step of outcome.steps) if (!step.keptUp && step.rate > rate && (!failed || step.rate < failed.rate)) failed = step;
  return failed;
}

interface FixedSummary {
  readonly delivered: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly serverCpu: number;
  readonly redisCpu: number;
  readonly serverBusy: number;
  readonly clientBusy: number;
  readonly othersBusy: number;
  /** Undefined when every round was lossless and kept up. */
  readonly problem: string | undefined;
}

function summarizeFixed(outcome: PeerOutcome): FixedSummary | undefined {
  const rounds = outcome.fixed;
  if (rounds.length === 0) return undefined;
  const of = (pick: (result: StepResult) => number | undefined) => median(rounds.map((result) => pick(result) ?? Number.NaN));
  return {
    delivered: of((r) => r.deliveredPerSecond),
    p50: of((r) => r.client.latency?.p50),
    p90: of((r) => r.client.latency?.p90),
    p99: of((r) => r.client.latency?.p99),
    max: of((r) => r.client.latency?.max),
    serverCpu: of((r) => r.serverCpuPerMessage),
    redisCpu: of((r) => r.redisCpuPerMessage),
    serverBusy: of((r) => r.serverBusy),
    clientBusy: of((r) => r.clientBusy),
    othersBusy: of((r) => r.othersBusy),
    problem: rounds.find((result) => !result.keptUp)?.problem,
  };
}

export function reportFanout(outcomes: readonly PeerOutcome[], settings: FanoutSettings, rounds: number): string[] {
  const failures: string[] = [];
  for (const outcome of outcomes) if (outcome.failure !== undefined) failures.push(`${outcome.name}: ${outcome.failure}`);
  const measured = outcomes.filter((outcome) => outcome.skipped === undefined);
  for (const outcome of outcomes) if (outcome.skipped !== undefined) print(`${outcome.name}: skipped (${outcome.skipped})`);

  const fixed = new Map(measured.map((outcome) => [outcome.name, summarizeFixed(outcome)]));
  print();
  printTable({
    title:
      `fixed load: ${settings.fixedRate} events/s to ${settings.subscribers.toLocaleString('en-US')} subscribers ` +
      `(${(settings.fixedRate * settings.subscribers).toLocaleString('en-US')} msgs/s) for ${settings.fixedSeconds} s; median of ${rounds} rounds`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'delivered' },
      { header: 'p50' },
      { header: 'p90' },
      { header: 'p99' },
      { header: 'max' },
      { header: 'server CPU/msg' },
      ...BUSY_COLUMNS,
      { header: 'zero loss', align: 'left' },
    ],
    rows: measured.map((outcome) => {
      const m = fixed.get(outcome.name);
      if (!m) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', '—', `✗ ${outcome.failure ?? 'not measured'}`];
      const lossless = outcome.fixed.every((result) => result.lossless && result.inOrder);
      const verdict = m.problem === undefined ? '✓' : lossless ? `✓ (but ${m.problem})` : `✗ ${m.problem}`;
      return [
        outcome.name,
        formatRate(m.delivered),
        formatMicros(m.p50),
        formatMicros(m.p90),
        formatMicros(m.p99),
        formatMicros(m.max),
        formatMicros(m.serverCpu),
        formatCores(m.serverBusy),
        formatCores(m.clientBusy),
        formatCores(m.othersBusy),
        outcome.fixed.length < rounds && outcome.failure !== undefined ? `${verdict}; then failed: ${outcome.failure}` : verdict,
      ];
    }),
    notes: [
      'one publish in flight at a time; latency: publisher sent → subscriber received (clocks of two processes on one machine)',
      'zero loss: every subscriber got every event exactly once, in publish order',
      BUSY_NOTE,
      ...redisNotes(measured, (outcome) => fixed.get(outcome.name)?.redisCpu),
    ],
  });
  for (const name of OURS_PEERS) {
    const problem = fixed.get(name)?.problem;
    const outcome = measured.find((candidate) => candidate.name === name);
    if (outcome?.fixed.some((result) => !result.lossless || !result.inOrder)) failures.push(`${name} failed the zero-loss check at the fixed load: ${problem ?? '?'}`);
  }

  reportSaturation(measured, settings);
  reportMemory(measured, settings);
  reportRatios(measured, fixed);
  reportAnalyticsOverhead(measured, fixed);
  return failures;
}

/**
 * What per-topic analytics costs on the hot path: `tributary` against the same server with
 * analytics off, measured in the same run, peers alternating. Saturation moves in the search's
 * steps (coarse); server CPU per message at the fixed load is the finer measure — its inverse is
 * throughput per core.
 */
function reportAnalyticsOverhead(outcomes: readonly PeerOutcome[], fixed: ReadonlyMap<PeerName, FixedSummary | undefined>): void {
  const on = outcomes.find((outcome) => outcome.name === OURS);
  const off = outcomes.find((outcome) => outcome.name === 'tributary-no-analytics');
  if (!on || !off) return;
  const saturation = (bestStep(on)?.deliveredPerSecond ?? Number.NaN) / (bestStep(off)?.deliveredPerSecond ?? Number.NaN);
  const cpuAtSaturation = (bestStep(off)?.serverCpuPerMessage ?? Number.NaN) / (bestStep(on)?.serverCpuPerMessage ?? Number.NaN);
  const cpuFixed = (fixed.get('tributary-no-analytics')?.serverCpu ?? Number.NaN) / (fixed.get(OURS)?.serverCpu ?? Number.NaN);
  const lost = (ratio: number) => (Number.isFinite(ratio) ? `${((1 - ratio) * 100).toFixed(1)} %` : '—');
  print();
  print(
    `analytics overhead (${OURS}/tributary-no-analytics, throughput ratios, above 1× means no loss): ` +
      `saturation msgs/s ${formatFineRatio(saturation)} (lost ${lost(saturation)}); ` +
      `per core at saturation ${formatFineRatio(cpuAtSaturation)} (lost ${lost(cpuAtSaturation)}); ` +
      `per core at the fixed load ${formatFineRatio(cpuFixed)} (lost ${lost(cpuFixed)}); aim: ≤ 3 % lost`,
  );
}

function formatFineRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(3)}×` : '—';
}

function reportSaturation(outcomes: readonly PeerOutcome[], settings: FanoutSettings): void {
  print();
  printTable({
    title:
      `saturation: highest rate kept up with — ${settings.stepSeconds} s steps doubling from ${settings.startRate} events/s, ` +
      `then ${settings.refinements} bisection${settings.refinements === 1 ? '' : 's'}; peers alternate at each rate`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'events/s' },
      { header: 'delivered' },
      { header: 'p50' },
      { header: 'p99' },
      { header: 'server CPU/msg' },
      { header: 'per core' },
      ...BUSY_COLUMNS,
      { header: 'next rate: not kept up', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const best = bestStep(outcome);
      const failed = firstFailedAbove(outcome, best?.rate ?? 0);
      const why = failed
        ? `${formatEvents(failed.rate)}/s: ${failed.problem ?? '?'} (delivered ${formatRate(failed.deliveredPerSecond)})`
        : outcome.failure !== undefined
          ? `✗ ${outcome.failure}`
          : best
            ? `none up to ${formatEvents(best.rate)}/s: the search stopped there`
            : 'not measured';
      if (!best) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', '—', why];
      return [
        outcome.name,
        formatEvents(best.rate),
        formatRate(best.deliveredPerSecond),
        formatMicros(best.client.latency?.p50 ?? Number.NaN),
        formatMicros(best.client.latency?.p99 ?? Number.NaN),
        formatMicros(best.serverCpuPerMessage),
        formatRate(1e6 / best.serverCpuPerMessage),
        formatCores(best.serverBusy),
        formatCores(best.clientBusy),
        formatCores(best.othersBusy),
        why,
      ];
    }),
    notes: [
      `up to 32 publishes in flight; kept up: no failed publish, every subscriber got every event exactly once and all in the same order,`,
      `and the last arrived at most max(${settings.tolerance.minDrainMs} ms, ${formatPercent(settings.tolerance.drainFraction)} of the step) after it was due`,
      'per core: 1 s ÷ server CPU/msg at that step, the messages one fully busy core would deliver at that cost (less exposed to the machine\'s other load than `delivered`)',
      ...outcomes.map((outcome) => {
        const steps = outcome.steps.map((step) => `${formatEvents(step.rate)}${step.keptUp ? '✓' : '✗'}`).join(' ') || '—';
        const answered = bestStep(outcome)?.publish.answered;
        // The publish answer shows where a backlog sits: before the event (HTTP, a fan-out done
        // before answering) or after it (delivery).
        return `${outcome.name}: ${steps}${answered ? `; publish answered p50 ${formatMicros(answered.p50)}, p99 ${formatMicros(answered.p99)} at the limit` : ''}`;
      }),
      BUSY_NOTE,
      ...boundNotes(outcomes),
      ...redisNotes(outcomes, (outcome) => bestStep(outcome)?.redisCpuPerMessage),
    ],
  });
}

function reportMemory(outcomes: readonly PeerOutcome[], settings: FanoutSettings): void {
  print();
  printTable({
    title: `memory: server process after a full GC, before and after ${settings.subscribers.toLocaleString('en-US')} sockets with one subscription each`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'RSS before' },
      { header: 'RSS after' },
      { header: 'RSS/conn' },
      { header: 'heap/conn' },
      { header: 'external/conn' },
    ],
    rows: outcomes.map((outcome) => {
      const memory = outcome.session?.memory;
      if (!memory) return [outcome.name, '—', '—', '—', '—', '—'];
      const per = (pick: (m: PeerMemory) => number) => formatKb((pick(memory.after) - pick(memory.before)) / memory.connections);
      return [
        outcome.name,
        formatMb(memory.before.rss),
        formatMb(memory.after.rss),
        per((m) => m.rss),
        per((m) => m.heapUsed),
        per((m) => m.external),
        ...(memory.after.collected ? [] : ['(no gc: includes garbage)']),
      ];
    }),
    notes: ['per conn = (after − before) ÷ sockets; for tributary-redis, what Redis holds is not counted'],
  });
}

function reportRatios(outcomes: readonly PeerOutcome[], fixed: ReadonlyMap<PeerName, FixedSummary | undefined>): void {
  print();
  print('ratios (ours/peer; saturation and per core above 1× are better, latency, CPU and memory below 1×)');
  const find = (name: PeerName) => outcomes.find((outcome) => outcome.name === name);
  const rssPerConnection = (outcome: PeerOutcome | undefined) => {
    const memory = outcome?.session?.memory;
    return memory ? (memory.after.rss - memory.before.rss) / memory.connections : Number.NaN;
  };
  for (const oursName of OURS_PEERS) {
    const ours = find(oursName);
    if (!ours) continue;
    for (const peerName of [REFERENCE, LIMIT]) {
      const peer = find(peerName);
      if (!peer) continue;
      const ratios: Ratio[] = [
        { metric: 'saturation msgs/s', value: (bestStep(ours)?.deliveredPerSecond ?? Number.NaN) / (bestStep(peer)?.deliveredPerSecond ?? Number.NaN) },
        { metric: 'per core', value: (bestStep(peer)?.serverCpuPerMessage ?? Number.NaN) / (bestStep(ours)?.serverCpuPerMessage ?? Number.NaN) },
        { metric: 'fixed p50', value: (fixed.get(oursName)?.p50 ?? Number.NaN) / (fixed.get(peerName)?.p50 ?? Number.NaN) },
        { metric: 'p99', value: (fixed.get(oursName)?.p99 ?? Number.NaN) / (fixed.get(peerName)?.p99 ?? Number.NaN) },
        { metric: 'server CPU/msg', value: (fixed.get(oursName)?.serverCpu ?? Number.NaN) / (fixed.get(peerName)?.serverCpu ?? Number.NaN) },
        { metric: 'RSS/conn', value: rssPerConnection(ours) / rssPerConnection(peer) },
      ];
      printRatioLine(oursName, peerName, ratios);
    }
  }
  const oursMemory = find(OURS)?.session?.memory;
  const heapPerConnection = oursMemory ? (oursMemory.after.heapUsed - oursMemory.before.heapUsed) / oursMemory.connections : Number.NaN;
  print(
    `  targets (context, not asserted): saturation ≥ 10× ${REFERENCE} and ≥ 0.5× ${LIMIT}; ≤ 10 KB per connection with one subscription ` +
      `(${OURS}: ${formatKb(rssPerConnection(find(OURS)))} RSS, ${formatKb(heapPerConnection)} heap)`,
  );
}

/** Says when a peer's limit may be the load client's or the machine's rather than its own. */
function boundNotes(outcomes: readonly PeerOutcome[]): string[] {
  const notes: string[] = [];
  const cores = os.cpus().length;
  for (const outcome of outcomes) {
    const best = bestStep(outcome);
    const steps = [best, firstFailedAbove(outcome, best?.rate ?? 0)].filter((step) => step !== undefined);
    const client = Math.max(0, ...steps.map((step) => step.clientBusy));
    const machine = Math.max(0, ...steps.map((step) => step.machineBusy).filter(Number.isFinite));
    const others = Math.max(0, ...steps.map((step) => step.othersBusy).filter(Number.isFinite));
    if (client >= CLIENT_BOUND) {
      notes.push(`${outcome.name}: the load client used ${formatCores(client)} cores at this limit: it may be the client's, read it as a lower bound`);
    }
    if (machine >= MACHINE_BOUND * cores) {
      notes.push(
        `${outcome.name}: the machine was ${formatPercent(machine / cores)} busy at this limit (${formatCores(others)} cores on other work): ` +
          'it may be the machine\'s, not only the server\'s',
      );
    }
  }
  return notes;
}

function redisNotes(outcomes: readonly PeerOutcome[], redisCpu: (outcome: PeerOutcome) => number | undefined): string[] {
  return outcomes.flatMap((outcome) => {
    const cpu = redisCpu(outcome);
    return cpu === undefined || Number.isNaN(cpu) ? [] : [`${outcome.name}: plus redis-server CPU ${formatMicros(cpu)}/msg (not in the column)`];
  });
}

function formatEvents(rate: number): string {
  return rate >= 100 ? Math.round(rate).toLocaleString('en-US') : String(Number(rate.toFixed(2)));
}

function formatCores(cores: number): string {
  return Number.isFinite(cores) ? cores.toFixed(2) : '—';
}

function formatKb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : '—';
}

function formatMb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

