/**
 * What per-topic analytics costs on the hot path: `tributary` against the same server with
 * `ANALYTICS_ENABLED=false`, both holding the same subscribers, at one identical fixed rate, over
 * at least 5 rounds, the order alternating (on, off / off, on…) and each step with every other
 * server paused. Per round, the ratio of their server CPU per message (off ÷ on: throughput per
 * core, above 1× means nothing lost); the line gives the median and the spread of the rounds, and
 * says ✓ or ✗ against the aim (≤ 3 % lost) only when every round falls on the same side of it.
 */
import { OURS } from '../peers/peer.ts';
import { print, printTable } from '../lib/report.ts';
import { formatMicros, median } from '../lib/stats.ts';
import type { FanoutSettings, PeerOutcome } from './fanout-report.ts';
import { count, measure } from './fanout-search.ts';
import type { StepResult } from './fanout-session.ts';

/** The aim: at most this share of throughput per core lost to analytics. */
export const OVERHEAD_AIM = 0.03;

/** One round: both steps, or why it does not count. */
interface OverheadRound {
  readonly on: StepResult | undefined;
  readonly off: StepResult | undefined;
}

export interface OverheadVerdict {
  /** Per counted round, the share of throughput per core lost (1 − off CPU/msg ÷ on CPU/msg). */
  readonly lost: readonly number[];
  /** `✓ …`, `✗ …` or `undecided: …`. */
  readonly verdict: string;
}

/** ✓ when every round lost at most the aim, ✗ when every round lost more, undecided otherwise (or with fewer than `minRounds`). */
export function judgeOverhead(lost: readonly number[], minRounds: number, aim = OVERHEAD_AIM): OverheadVerdict {
  const percent = (share: number) => `${(share * 100).toFixed(1)} %`;
  if (lost.length < minRounds) return { lost, verdict: `undecided: ${lost.length} of ${minRounds} rounds could be counted` };
  const [low, high] = [Math.min(...lost), Math.max(...lost)];
  if (high <= aim) return { lost, verdict: `✓ every round within the aim (≤ ${percent(aim)} lost)` };
  if (low > aim) return { lost, verdict: `✗ every round above the aim (≤ ${percent(aim)} lost)` };
  return { lost, verdict: `undecided: the rounds span ${percent(low)} to ${percent(high)}, across the aim (≤ ${percent(aim)}): more rounds or a quieter machine` };
}

/** Measures the rounds; `group` is every peer of the section (all but the measured one are paused). */
export async function runAnalyticsOverhead(group: readonly PeerOutcome[], on: PeerOutcome, off: PeerOutcome, settings: FanoutSettings): Promise<void> {
  const rounds: OverheadRound[] = [];
  const step = (outcome: PeerOutcome) =>
    measure(group, outcome, settings, (session) =>
      session.step({ rate: settings.overheadRate, count: count(settings.overheadRate, settings.overheadSeconds), ordered: false, tolerance: settings.tolerance }),
    );
  // Untimed, as the fixed load's warm-up: the first step at a new rate warms the JIT.
  for (const outcome of [on, off]) await step(outcome);
  for (let round = 1; round <= settings.overheadRounds; round += 1) {
    const order = round % 2 === 1 ? [on, off] : [off, on];
    const results = new Map<PeerOutcome, StepResult | undefined>();
    for (const outcome of order) results.set(outcome, await step(outcome));
    rounds.push({ on: results.get(on), off: results.get(off) });
  }
  reportOverhead(rounds, settings, on.failure ?? off.failure);
}

function reportOverhead(rounds: readonly OverheadRound[], settings: FanoutSettings, failure: string | undefined): void {
  const counted = rounds.filter((round) => round.on?.keptUp === true && round.off?.keptUp === true);
  const lost = counted.map((round) => 1 - (round.off?.serverCpuPerMessage ?? Number.NaN) / (round.on?.serverCpuPerMessage ?? Number.NaN));
  const { verdict } = judgeOverhead(lost, Math.min(5, settings.overheadRounds));
  const percent = (share: number) => (Number.isFinite(share) ? `${(share * 100).toFixed(1)} %` : '—');
  print();
  printTable({
    title:
      `analytics overhead: ${OURS} against tributary-no-analytics (ANALYTICS_ENABLED=false), ${settings.overheadRate} events/s to ` +
      `${settings.subscribers.toLocaleString('en-US')} subscribers for ${settings.overheadSeconds} s, ${settings.overheadRounds} rounds, the order alternating`,
    columns: [{ header: 'round' }, { header: 'CPU/msg on' }, { header: 'CPU/msg off' }, { header: 'per core off→on' }, { header: 'lost' }, { header: 'counted', align: 'left' }],
    rows: rounds.map((round, index) => {
      const [on, off] = [round.on?.serverCpuPerMessage ?? Number.NaN, round.off?.serverCpuPerMessage ?? Number.NaN];
      const why = !round.on || !round.off ? 'not measured' : (round.on.problem ?? round.off.problem);
      return [String(index + 1), formatMicros(on), formatMicros(off), `${(off / on).toFixed(3)}×`, percent(1 - off / on), why === undefined ? '✓' : `✗ ${why}`];
    }),
    notes: [
      'CPU/msg: the server process over the step ÷ messages delivered; per core off→on: CPU/msg off ÷ on (above 1× nothing was lost); a round counts when both kept up',
      `lost over the counted rounds: median ${percent(median(lost))}, spread ${percent(Math.min(...lost))} to ${percent(Math.max(...lost))}; aim ≤ ${percent(OVERHEAD_AIM)}: ${verdict}`,
      ...(failure === undefined ? [] : [`✗ ${failure}`]),
    ],
  });
}
