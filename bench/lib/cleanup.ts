/**
 * What the runner must undo at the end: peer processes, sockets, timers. Steps run in reverse
 * order of registration, every one of them even when an earlier one fails; `run()` is idempotent.
 */
export interface CleanupStack {
  push(name: string, step: () => Promise<void> | void): void;
  /** Runs every step once (later calls return the same promise); resolves with the failures. */
  run(): Promise<readonly Error[]>;
}

export function createCleanupStack(): CleanupStack {
  const steps: { name: string; step: () => Promise<void> | void }[] = [];
  let running: Promise<readonly Error[]> | undefined;
  return {
    push(name, step) {
      if (running) throw new Error(`cleanup already ran; cannot register "${name}"`);
      steps.push({ name, step });
    },
    run() {
      running ??= (async () => {
        const failures: Error[] = [];
        for (const { name, step } of steps.reverse()) {
          try {
            await step();
          } catch (error) {
            failures.push(new Error(`cleanup "${name}" failed: ${error instanceof Error ? error.message : String(error)}`));
          }
        }
        return failures;
      })();
      return running;
    },
  };
}
