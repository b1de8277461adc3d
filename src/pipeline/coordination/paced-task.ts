/**
 * A periodic task whose cost grows with what it reads — a count of every pending row, say — rests
 * after each run for `restFactor` times as long as the run took, and is skipped while it rests.
 * However large what it reads grows, it takes at most 1 / (1 + restFactor) of the time of whoever
 * runs it (a database backend, a process); while it is cheap, it runs every time it is called.
 */
export interface PacedTaskOptions {
  /** After a run of d ms, the task rests for restFactor · d ms. */
  readonly restFactor: number;
  /** @default performance.now */
  readonly now?: () => number;
}

/** Runs `task` and resolves its result, or resolves undefined without running it while it rests. */
export type PacedTask<T> = () => Promise<T | undefined>;

export function pacedTask<T>(task: () => Promise<T>, options: PacedTaskOptions): PacedTask<T> {
  const now = options.now ?? (() => performance.now());
  let restUntil = Number.NEGATIVE_INFINITY;
  return async () => {
    const started = now();
    if (started < restUntil) return undefined;
    try {
      return await task();
    } finally {
      // A run that failed rests too: a slow failure is not repeated at once.
      const ended = now();
      restUntil = ended + options.restFactor * (ended - started);
    }
  };
}
