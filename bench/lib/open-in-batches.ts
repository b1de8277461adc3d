/**
 * Opens `count` connections, at most `parallel` handshakes at a time (a thousand at once would
 * time out on a loaded machine); each one opened is handed to `opened` at once, so a caller can
 * close them if a later one fails. Rejects with the first failure of a batch.
 */
export async function openInBatches<T>(count: number, parallel: number, open: (index: number) => Promise<T>, opened: (value: T) => void): Promise<void> {
  for (let first = 0; first < count; first += parallel) {
    const results = await Promise.allSettled(Array.from({ length: Math.min(parallel, count - first) }, (_unused, offset) => open(first + offset)));
    for (const result of results) if (result.status === 'fulfilled') opened(result.value);
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
