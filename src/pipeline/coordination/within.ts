/**
 * A wait with an end: the Redis commands whose reply can be queued for as long as Redis is away
 * (a SUBSCRIBE in the subscriber connection's offline queue, a lease script) must not hold their
 * caller that long. What the promise does after the time is up is the caller's to undo.
 */

/** Settles as `promise` does, or rejects with `Error(message)` after `ms` when it has not. */
export async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether `work` settled (true) before `budgetMs` passed (false), never rejecting: what a close
 * waits for that may need Redis (BullMQ waits for its connection to be ready, for ever while
 * Redis is away), or an evaluation in flight at shutdown.
 */
export async function settledWithin(work: Promise<unknown>, budgetMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    work.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(resolve, Math.max(0, budgetMs), false))),
  ]);
  clearTimeout(timer);
  return settled;
}
