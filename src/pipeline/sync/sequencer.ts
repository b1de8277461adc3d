/**
 * Keeps per-key order across an await: a slot is reserved while the caller still holds what
 * orders it (a row lock), and its work runs only after every earlier slot of the key finished.
 * Used to publish a document's events in revision order although they are routed after commit.
 */
export interface Slot {
  /** Runs `work` once the earlier slots of the key are done. */
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Gives the slot up (the write it was reserved for failed). */
  cancel(): void;
}

export interface Sequencer {
  reserve(key: string): Slot;
}

export function createSequencer(): Sequencer {
  const tails = new Map<string, Promise<void>>();
  return {
    reserve(key) {
      const previous = tails.get(key) ?? Promise.resolve();
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => (finish = resolve));
      const tail = previous.then(() => finished);
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      let used = false;
      return {
        async run(work) {
          if (used) throw new Error('slot already used');
          used = true;
          try {
            await previous;
            return await work();
          } finally {
            finish();
          }
        },
        cancel() {
          if (used) return;
          used = true;
          finish();
        },
      };
    },
  };
}
