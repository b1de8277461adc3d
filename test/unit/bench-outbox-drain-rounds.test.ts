import { describe, expect, it } from 'vitest';
import { alternatingOrder } from '../../bench/lib/rounds.ts';
import { DRAIN_CONFIGURATIONS, type DrainConfiguration, type DrainOutcome } from '../../bench/workloads/outbox-drain.ts';
import { summarizeDrainRounds } from '../../bench/workloads/outbox-report.ts';

const [naive, one, two] = DRAIN_CONFIGURATIONS as [DrainConfiguration, DrainConfiguration, DrainConfiguration, DrainConfiguration];

/** A drain of 1,000 rows in `ms`, its Postgres backends spending `postgresMicros`. */
function outcome(configuration: DrainConfiguration, round: number, ms: number, postgresMicros = 1000): DrainOutcome {
  return {
    configuration,
    round,
    rows: 1000,
    routed: 1000,
    elapsedMs: ms,
    drained: true,
    pending: 0,
    distinct: 1000,
    duplicates: 0,
    outOfOrder: 0,
    pollerCpuMicros: 1000,
    postgresCpuMicros: postgresMicros,
    failure: undefined,
  };
}

describe('bench outbox drain rounds', () => {
  it('runs the configurations in their order in odd rounds and reversed in even ones', () => {
    expect(alternatingOrder(['a', 'b', 'c'], 1)).toEqual(['a', 'b', 'c']);
    expect(alternatingOrder(['a', 'b', 'c'], 2)).toEqual(['c', 'b', 'a']);
    expect(alternatingOrder(['a', 'b', 'c'], 3)).toEqual(['a', 'b', 'c']);
  });

  it('compares each configuration with the naive poller of its own round, and reports the median of those ratios', () => {
    // Round 2 ran on a machine twice as slow: every drain took twice as long.
    const outcomes = [
      outcome(naive, 1, 400, 4000),
      outcome(one, 1, 100, 1000),
      outcome(two, 1, 80, 1000),
      outcome(two, 2, 160, 1000),
      outcome(one, 2, 250, 2000),
      outcome(naive, 2, 800, 4000),
      outcome(naive, 3, 400, 4000),
      outcome(one, 3, 200, 2000),
    ];
    const summaries = summarizeDrainRounds(outcomes);
    expect(summaries.map((summary) => summary.configuration.name)).toEqual([naive.name, one.name, two.name]);
    const [naiveSummary, oneSummary, twoSummary] = summaries;
    expect(naiveSummary).toMatchObject({ rates: [2500, 1250, 2500], rate: 2500, ratios: [], postgresRatios: [] });
    expect(naiveSummary?.ratio).toBeNaN();
    // 4×, 3.2×, 2×: the median is 3.2×, not the ratio of the medians (5,000 ÷ 2,500 = 2×).
    expect(oneSummary).toMatchObject({ rates: [10_000, 4000, 5000], rate: 5000, ratios: [4, 3.2, 2], ratio: 3.2 });
    expect(oneSummary?.postgresRatios).toEqual([0.25, 0.5, 0.5]);
    expect(oneSummary?.postgresRatio).toBe(0.5);
    expect(twoSummary).toMatchObject({ rates: [12_500, 6250], ratios: [5, 5], ratio: 5 });
  });

  it('leaves a round without a naive drain out of the ratios', () => {
    const summaries = summarizeDrainRounds([outcome(one, 1, 100), outcome(naive, 2, 400), outcome(one, 2, 200)]);
    expect(summaries.find((summary) => summary.configuration === one)).toMatchObject({ rates: [10_000, 5000], ratios: [2], ratio: 2 });
  });
});
