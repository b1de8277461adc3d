/**
 * A cumulative count's growth over a sliding window, kept by the process that counts: each report
 * samples its own total, and the growth is the total now minus the total when the window began —
 * the newest sample at or before the window's start. With none that old the process is younger
 * than the window (give or take its first report), so it counts from its start.
 *
 * Kept here rather than by whoever reads the reports: a reader's samples are only those it saw, so
 * a reader that just took over has none (a storm under way reads 0) and one that stopped reading
 * for hours has a stale baseline (everything since reads as in the window). The instance samples
 * itself every report, whoever reads, and against its own clock.
 */

/** Samples kept at most (about): one is kept only a thousandth of the window after the last kept. */
const MAX_SAMPLES = 1_000;

interface Sample {
  readonly at: number;
  readonly total: number;
}

export interface WindowedCount {
  /** Records the total at `at` (ms since the epoch) and returns its growth over the window ending then. */
  add(at: number, total: number): number;
}

export function createWindowedCount(windowMs: number): WindowedCount {
  const samples: Sample[] = [];
  // Whatever the window (up to a day) and the tick (down to 1 s), memory stays bounded; the
  // baseline is then older than the window's start by up to this much more (and a report).
  const spacing = windowMs / MAX_SAMPLES;
  return {
    add(at, total) {
      const last = samples.at(-1);
      if (last === undefined || at - last.at >= spacing) samples.push({ at, total });
      const windowStart = at - windowMs;
      while (samples.length > 1 && samples[1]!.at <= windowStart) samples.shift();
      const first = samples[0]!;
      return Math.max(0, total - (first.at <= windowStart ? first.total : 0));
    },
  };
}
