/**
 * The fan-out workload's tables — memory, fixed load, saturation — each printed as soon as its part
 * of a section is measured (the ratio lines and the analytics overhead are `fanout-ratios.ts`'s).
 * Reads the outcomes only.
 */
import os from 'node:os';
import type { PeerName } from '../peers/peer.ts';
import type { PeerMemory } from '../lib/peer-process.ts';
import { print, printTable } from '../lib/report.ts';
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
  /** Longest wait for a server to finish a backlog (after a step, before it is paused), in ms. */
  readonly settleMs: number;
  /** The analytics overhead: rounds of `tributary` against `tributary-no-analytics`, alternating (at least 5). */
  readonly overheadRounds: number;
  /** …at this rate (events/s, up to 32 publishes in flight) for this long (s), the same for both. */
  readonly overheadRate: number;
  readonly overheadSeconds: number;
}

/** Everything measured for one peer in one section. */
export interface PeerOutcome {
  readonly name: PeerName;
  session: FanoutSession | undefined;
  /** Why the peer could not be (fully) measured: a crash, an error, sockets it closed, frames not as expected. */
  failure: string | undefined;
  /** One fixed-load result per round. */
  readonly fixed: StepResult[];
  /** Saturation steps in the order run. */
  readonly steps: StepResult[];
}

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

export interface FixedSummary {
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
  /** Why a round was not run at the offered load (`offeredLoadShortfall`); undefined when every one was. */
  readonly shortfall: string | undefined;
}

export function summarizeFixed(outcome: PeerOutcome): FixedSummary | undefined {
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
    shortfall: rounds.find((result) => result.shortfall !== undefined)?.shortfall,
  };
}

/** The most the paused peers' processes used during one step of these outcomes, in cores. */
function pausedNote(outcomes: readonly PeerOutcome[], steps: (outcome: PeerOutcome) => readonly StepResult[]): string {
  const most = Math.max(0, ...outcomes.flatMap((outcome) => steps(outcome).map((step) => step.bystandersBusy)).filter(Number.isFinite));
  return `the other servers and their load clients are paused (SIGSTOP) during each step; they used ${formatCores(most)} cores at most`;
}

export function reportFixed(outcomes: readonly PeerOutcome[], settings: FanoutSettings, rounds: number, section: string): void {
  print();
  printTable({
    title:
      `fixed load (${section}): ${settings.fixedRate} events/s to ${settings.subscribers.toLocaleString('en-US')} subscribers ` +
      `(${(settings.fixedRate * settings.subscribers).toLocaleString('en-US')} msgs/s) for ${settings.fixedSeconds} s; median of ${rounds} rounds`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'delivered' },
      { header: 'p50' },
      { header: 'p90' },
      { header: 'p99' },
      { header: 'max' },
      { header: `CPU/msg @ ${settings.fixedRate} ev/s` },
      ...BUSY_COLUMNS,
      { header: 'zero loss; at the offered load', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const m = summarizeFixed(outcome);
      if (!m) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', '—', `✗ ${outcome.failure ?? 'not measured'}`];
      const lossless = outcome.fixed.every((result) => result.lossless && result.inOrder);
      const verdict = m.shortfall === undefined ? '✓' : lossless ? `✓ but not at the offered load: ${m.shortfall}` : `✗ ${m.problem ?? m.shortfall}`;
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
      'one publish in flight at a time; latency: when the event was due (its place in the schedule, however late the publisher got to send it) → subscriber received (clocks of two processes on one machine)',
      'zero loss: every subscriber got every event exactly once, in publish order; at the offered load: the publisher kept its schedule and the last message came within the allowance — if not, the row is not at the load in the title and its ratios are ✗',
      `CPU/msg: the server process's CPU over the step ÷ messages delivered, all peers at this same rate; ${pausedNote(outcomes, (outcome) => outcome.fixed)}`,
      BUSY_NOTE,
      ...redisNotes(outcomes, (outcome) => summarizeFixed(outcome)?.redisCpu),
    ],
  });
}

export function reportSaturation(outcomes: readonly PeerOutcome[], settings: FanoutSettings, section: string): void {
  print();
  printTable({
    title:
      `saturation (${section}): highest rate kept up with — ${settings.stepSeconds} s steps doubling from ${settings.startRate} events/s, ` +
      `then ${settings.refinements} bisection${settings.refinements === 1 ? '' : 's'}; peers alternate at each rate`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'events/s' },
      { header: 'delivered' },
      { header: 'p50' },
      { header: 'p99' },
      { header: 'CPU/msg @ own limit' },
      { header: 'per core @ own limit' },
      { header: `CPU/msg @ ${settings.fixedRate} ev/s` },
      ...BUSY_COLUMNS,
      { header: 'next rate: not kept up', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const best = bestStep(outcome);
      const failed = firstFailedAbove(outcome, best?.rate ?? 0);
      const fixedCpu = formatMicros(summarizeFixed(outcome)?.serverCpu ?? Number.NaN);
      const why = failed
        ? `${formatEvents(failed.rate)}/s: ${failed.problem ?? '?'} (delivered ${formatRate(failed.deliveredPerSecond)})`
        : outcome.failure !== undefined
          ? `✗ ${outcome.failure}`
          : best
            ? `none up to ${formatEvents(best.rate)}/s: the search stopped there`
            : 'not measured';
      if (!best) return [outcome.name, '—', '—', '—', '—', '—', '—', fixedCpu, '—', '—', '—', why];
      return [
        outcome.name,
        formatEvents(best.rate),
        formatRate(best.deliveredPerSecond),
        formatMicros(best.client.latency?.p50 ?? Number.NaN),
        formatMicros(best.client.latency?.p99 ?? Number.NaN),
        formatMicros(best.serverCpuPerMessage),
        formatRate(1e6 / best.serverCpuPerMessage),
        fixedCpu,
        formatCores(best.serverBusy),
        formatCores(best.clientBusy),
        formatCores(best.othersBusy),
        why,
      ];
    }),
    notes: [
      `up to 32 publishes in flight; kept up: no failed publish, every subscriber got every event exactly once and all in the same order,`,
      `and the last arrived at most max(${settings.tolerance.minDrainMs} ms, ${formatPercent(settings.tolerance.drainFraction)} of the step) after it was due`,
      'CPU/msg @ own limit: at the events/s of its own row — each server at another rate, and CPU per message falls as the rate rises (several events share a write),',
      `so a server with a higher limit reads cheaper there; CPU/msg @ ${settings.fixedRate} ev/s: the fixed load's, every server at the same rate (the comparable one)`,
      'per core @ own limit: 1 s ÷ CPU/msg @ own limit, the messages one fully busy core would deliver at that cost',
      ...outcomes.map((outcome) => {
        const steps = outcome.steps.map((step) => `${formatEvents(step.rate)}${step.keptUp ? '✓' : '✗'}`).join(' ') || '—';
        const answered = bestStep(outcome)?.publish.answered;
        // The publish answer shows where a backlog sits: before the event (HTTP, a fan-out done
        // before answering) or after it (delivery).
        return `${outcome.name}: ${steps}${answered ? `; publish answered p50 ${formatMicros(answered.p50)}, p99 ${formatMicros(answered.p99)} at the limit` : ''}`;
      }),
      BUSY_NOTE,
      pausedNote(outcomes, (outcome) => outcome.steps),
      ...boundNotes(outcomes),
      ...redisNotes(outcomes, (outcome) => bestStep(outcome)?.redisCpuPerMessage),
    ],
  });
}

/** Per connection, (after − before) ÷ sockets of one kind of memory; NaN without a sample. */
export function perConnection(outcome: PeerOutcome | undefined, pick: (memory: PeerMemory) => number): number {
  const memory = outcome?.session?.memory;
  return memory ? (pick(memory.after) - pick(memory.before)) / memory.connections : Number.NaN;
}

export function reportMemory(outcomes: readonly PeerOutcome[], settings: FanoutSettings, section: string): void {
  print();
  printTable({
    title: `memory (${section}): server process after a full GC, before and after ${settings.subscribers.toLocaleString('en-US')} sockets with one subscription each`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'heap/conn' },
      { header: 'external/conn' },
      { header: 'RSS/conn (noisy)' },
      { header: 'heap before' },
      { header: 'heap after' },
      { header: 'RSS before' },
      { header: 'RSS after' },
    ],
    rows: outcomes.map((outcome) => {
      const memory = outcome.session?.memory;
      if (!memory) return [outcome.name, '—', '—', '—', '—', '—', '—', '—'];
      const per = (pick: (m: PeerMemory) => number) => formatKb(perConnection(outcome, pick));
      return [
        outcome.name,
        per((m) => m.heapUsed),
        per((m) => m.external),
        per((m) => m.rss),
        formatMb(memory.before.heapUsed),
        formatMb(memory.after.heapUsed),
        formatMb(memory.before.rss),
        formatMb(memory.after.rss),
        ...(memory.after.collected ? [] : ['(no gc: includes garbage)']),
      ];
    }),
    notes: [
      'per conn = (after − before) ÷ sockets; heap/conn is the figure to compare: the V8 heap after a full GC is what the sockets and subscriptions hold',
      'RSS/conn is one sample of pages the allocator reserved (it can stay from an earlier peak, or be reused): noisy, for context only; for tributary-redis, what Redis holds is not counted',
    ],
  });
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

export function formatEvents(rate: number): string {
  return rate >= 100 ? Math.round(rate).toLocaleString('en-US') : String(Number(rate.toFixed(2)));
}

export function formatCores(cores: number): string {
  return Number.isFinite(cores) ? cores.toFixed(2) : '—';
}

export function formatKb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : '—';
}

function formatMb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}
