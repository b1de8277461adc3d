/**
 * The median over rounds of one peer's fixed-rate steps, as `docs` and `cdc` report them: what
 * was sent, how late it arrived, what it cost, and whether every subscriber got every event
 * exactly once, in order (and none of another topic's).
 */
import { median } from '../lib/stats.ts';
import type { StepResult } from './fanout-session.ts';
import { achievedRate } from './step-problems.ts';

export interface RoundsSummary {
  /** Events per second actually sent: below the offered rate when one takes longer than the interval. */
  readonly achieved: number;
  /** Sent → the subscriber's `next`, in µs. */
  readonly p50: number;
  readonly p99: number;
  /** Sent → answered (the mutation's HTTP response, the INSERT's commit), in µs. */
  readonly answeredP50: number;
  readonly answeredP99: number;
  /** Server process CPU ÷ events, in µs. */
  readonly cpuPerEvent: number;
  /** redis-server's CPU ÷ events, in µs; NaN without one. */
  readonly redisCpuPerEvent: number;
  /** Events received by all subscribers, and what they should have received, over all rounds. */
  readonly delivered: number;
  readonly expected: number;
  readonly zeroLoss: boolean;
  /** The first loss, disorder, wrong delivery or failed send of a round. */
  readonly problem: string | undefined;
  /** An event twice, out of order, or at another topic's subscriber: a bug, not a load limit. */
  readonly wrong: string | undefined;
  /**
   * Why a round's figures are not those of the offered rate (the writer lagged, or the peer delivered
   * below the rate: `offeredLoadShortfall`), the first round's that has one; ratios with it are ✗.
   */
  readonly shortfall: string | undefined;
}

function wrongDelivery(result: StepResult): string | undefined {
  const { client } = result;
  if (client.misrouted > 0) return `${client.misrouted} reached another tenant's subscriber`;
  if (client.duplicates > 0) return `${client.duplicates} delivered twice${client.lateDuplicates > 0 ? ` (${client.lateDuplicates} of an earlier step, arriving late)` : ''}`;
  if (client.outOfOrder > 0) return `${client.outOfOrder} out of order`;
  return undefined;
}

/** Undefined when no round was measured. */
export function summarizeRounds(rounds: readonly StepResult[]): RoundsSummary | undefined {
  if (rounds.length === 0) return undefined;
  const of = (pick: (result: StepResult) => number | undefined) => median(rounds.map((result) => pick(result) ?? Number.NaN));
  let delivered = 0;
  let expected = 0;
  for (const result of rounds) {
    delivered += result.client.received;
    expected += result.client.received + result.client.missing;
  }
  const bad = rounds.find((result) => !result.lossless || !result.inOrder || result.publish.failures > 0 || wrongDelivery(result) !== undefined);
  return {
    achieved: of(achievedRate),
    p50: of((r) => r.client.latency?.p50),
    p99: of((r) => r.client.latency?.p99),
    answeredP50: of((r) => r.publish.answered?.p50),
    answeredP99: of((r) => r.publish.answered?.p99),
    cpuPerEvent: of((r) => r.serverCpuMicros / r.events),
    redisCpuPerEvent: of((r) => (r.redisCpuMicros ?? Number.NaN) / r.events),
    delivered,
    expected,
    zeroLoss: bad === undefined,
    problem: bad === undefined ? undefined : (wrongDelivery(bad) ?? bad.problem),
    wrong: rounds.map(wrongDelivery).find((text) => text !== undefined),
    shortfall: rounds.map((result) => result.shortfall).find((text) => text !== undefined),
  };
}
