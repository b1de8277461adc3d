import type { StreamRef } from './stream.ts';

/**
 * Redis names of a stream. The `{…}` hash tag puts a stream's log, epoch, whether that epoch has
 * had events (`used`), the log's byte total (`bytes`, log/redis-log-scripts.ts) and channel in one cluster slot, so the append script may touch them
 * together. Stream keys contain the scope (percent-encoded) and a validated topic, never raw
 * client text.
 */
export function streamKeys(prefix: string, stream: StreamRef) {
  const tag = `${prefix}{${stream.key}}`;
  return { log: `${tag}:log`, epoch: `${tag}:epoch`, used: `${tag}:used`, bytes: `${tag}:bytes`, live: `${tag}:live` } as const;
}
