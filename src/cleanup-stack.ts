import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from './logger.ts';

/** What a start-up registers to undo on the way out. */
export interface CleanupStack {
  push(name: string, run: () => Promise<void>): void;
  run(): Promise<void>;
  /**
   * The step running now, with the step of a stack run inside it after it (`server › http server`);
   * undefined before and after `run()`. What the shutdown deadline names when it gives up.
   */
  current(): string | undefined;
}

/** Where a stack's `run()` stands: its step now, and the stack run inside that step, if any. */
interface Progress {
  step: string | undefined;
  inner: Progress | undefined;
}

/**
 * The progress of the step being run, for a stack whose `run()` is called inside it: the nested
 * stack (a subsystem's own) reports its step there without either stack knowing the other.
 */
const enclosing = new AsyncLocalStorage<Progress>();

/** Disposers run in reverse order; each runs even when an earlier one fails. Idempotent. */
export function createCleanupStack(logger: Logger): CleanupStack {
  const steps: { name: string; run: () => Promise<void> }[] = [];
  const progress: Progress = { step: undefined, inner: undefined };
  let running: Promise<void> | undefined;
  return {
    push(name: string, run: () => Promise<void>) {
      steps.push({ name, run });
    },
    run(): Promise<void> {
      running ??= (async () => {
        const outer = enclosing.getStore();
        if (outer) outer.inner = progress;
        for (const step of steps.reverse()) {
          progress.step = step.name;
          try {
            await enclosing.run(progress, step.run);
          } catch (error) {
            logger.error({ err: error, step: step.name }, 'shutdown step failed');
          }
          progress.inner = undefined;
        }
        progress.step = undefined;
        if (outer?.inner === progress) outer.inner = undefined;
      })();
      return running;
    },
    current() {
      const names: string[] = [];
      for (let at: Progress | undefined = progress; at?.step !== undefined; at = at.inner) names.push(at.step);
      return names.length === 0 ? undefined : names.join(' › ');
    },
  };
}
