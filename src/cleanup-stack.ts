import type { Logger } from './logger.ts';

/** What a start-up registers to undo on the way out. */
export interface CleanupStack {
  push(name: string, run: () => Promise<void>): void;
  run(): Promise<void>;
}

/** Disposers run in reverse order; each runs even when an earlier one fails. Idempotent. */
export function createCleanupStack(logger: Logger): CleanupStack {
  const steps: { name: string; run: () => Promise<void> }[] = [];
  let running: Promise<void> | undefined;
  return {
    push(name: string, run: () => Promise<void>) {
      steps.push({ name, run });
    },
    run(): Promise<void> {
      running ??= (async () => {
        for (const step of steps.reverse()) {
          try {
            await step.run();
          } catch (error) {
            logger.error({ err: error, step: step.name }, 'shutdown step failed');
          }
        }
      })();
      return running;
    },
  };
}
