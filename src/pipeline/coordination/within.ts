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
