/** The minute store of the embedded mode: the one process's memory. */
import { randomUUID } from 'node:crypto';
import type { MinuteStore } from './minute-store.ts';
import { emptyCounts, environmentKey, mergeCounts, mergeTopics, subtractTopics, type TopicCounts } from './topic-counts.ts';

/** Minutes kept at most; older ones (no worker flushed them) are dropped first. */
const MAX_MINUTES = 120;

export function createMemoryMinuteStore(): MinuteStore {
  const minutes = new Map<number, Map<string, TopicCounts>>();
  // What this store holds dies with the process, and its pusher with it: one generation.
  const generation = randomUUID();
  return {
    kind: 'memory',
    push(batch) {
      let topics = minutes.get(batch.minute);
      if (!topics) {
        minutes.set(batch.minute, (topics = new Map<string, TopicCounts>()));
        if (minutes.size > MAX_MINUTES) minutes.delete(Math.min(...minutes.keys()));
      }
      mergeTopics(topics, batch.topics);
      return Promise.resolve({ generation });
    },
    minutes() {
      return Promise.resolve([...minutes.keys()].sort((a, b) => a - b));
    },
    read(minute, environment) {
      // A topic key starts with its environment's key: one prefix test tells the environment.
      const prefix = environment && environmentKey(environment.app, environment.env);
      const copy = new Map<string, TopicCounts>();
      for (const [key, counts] of minutes.get(minute) ?? []) {
        if (prefix !== undefined && !key.startsWith(prefix)) continue;
        if (environment?.accept && !environment.accept(key)) continue;
        const into = emptyCounts();
        mergeCounts(into, counts);
        copy.set(key, into);
      }
      return Promise.resolve(copy);
    },
    remove(minute, written) {
      const topics = minutes.get(minute);
      if (topics && written) subtractTopics(topics, written);
      if (!written || topics?.size === 0) minutes.delete(minute);
      return Promise.resolve();
    },
  };
}
