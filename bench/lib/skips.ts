/**
 * What a run did not measure for want of something outside the benchmark (a binary not
 * installed), and what that does to its exit code: a run with a skip is not a complete run, so it
 * fails unless `--allow-skip` says a partial one is wanted — a missing `redis-server` must not
 * pass for "every figure measured".
 */
export interface Skips {
  add(what: string, why: string): void;
  /** The lines to print at the end, and whether the skips fail the run. */
  verdict(allowSkip: boolean): { readonly lines: readonly string[]; readonly fails: boolean };
}

export function createSkips(): Skips {
  const skipped: { readonly what: string; readonly why: string }[] = [];
  return {
    add(what, why) {
      skipped.push({ what, why });
    },
    verdict(allowSkip) {
      if (skipped.length === 0) return { lines: [], fails: false };
      const lines = [
        `skipped ${skipped.length === 1 ? 'one peer or workload' : `${skipped.length} peers or workloads`} (not measured):`,
        ...skipped.map(({ what, why }) => `  ${what}: ${why}`),
        allowSkip
          ? '--allow-skip given: exit 0 all the same, but the run is incomplete'
          : 'the run is incomplete, so it exits 1; install what is missing, or pass --allow-skip to accept a partial run',
      ];
      return { lines, fails: !allowSkip };
    },
  };
}
