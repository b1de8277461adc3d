/**
 * The order of a source's chunk handlers around a step that concerns every row of some tables (a
 * TRUNCATE: `model-truncates.ts`). Chunks are handled concurrently, each entity's in commit order
 * (`cdc-source.ts`); such a step has no entity of its own, so it is a barrier instead: it runs once
 * every handler started before it has settled, and every handler started after it waits until it
 * has. Handlers started while no barrier is pending run at once, as without one.
 */
export interface ChunkBarrier {
  /** Runs `work` now, or after the pending barrier (in call order with the others waiting for it). */
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Runs `work` once every handler and barrier started before has settled (fulfilled or not); later ones wait for it. */
  runAlone<T>(work: () => Promise<T>): Promise<T>;
}

export function createChunkBarrier(): ChunkBarrier {
  /** Handlers started and not yet settled (never rejecting). */
  const running = new Set<Promise<void>>();
  /** Settles (never rejects) when the last barrier started has settled; undefined when none is pending. */
  let pending: Promise<void> | undefined;

  const track = <T>(started: Promise<T>): Promise<T> => {
    const settled = started.then(
      () => undefined,
      () => undefined,
    );
    running.add(settled);
    void settled.then(() => running.delete(settled));
    return started;
  };

  return {
    run(work) {
      const barrier = pending;
      if (barrier === undefined) return track(work());
      return track(barrier.then(work));
    },

    runAlone(work) {
      const earlier = [...running];
      const started = track(Promise.all(earlier).then(work));
      const settled = started.then(
        () => undefined,
        () => undefined,
      );
      pending = settled;
      void settled.then(() => {
        if (pending === settled) pending = undefined;
      });
      return started;
    },
  };
}
