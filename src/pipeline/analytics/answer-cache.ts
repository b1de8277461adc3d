/**
 * A short-lived, bounded cache of answers by key, sharing one computation among the callers that
 * ask while it runs. For the hot topics: an admin screen polls them every few seconds, often from
 * several tabs or operators at once, and each answer reads an hour of the environment's rows — the
 * same question asked again within `ttlMs` gets the same answer instead of another read.
 */

export interface AnswerCache<T> {
  /** The answer for `key`: cached when younger than the TTL (or still being computed), else `compute()`'s. */
  get(key: string, compute: () => Promise<T>): Promise<T>;
}

export interface AnswerCacheOptions {
  /** How long an answer is reused, in ms; 0 computes every time. */
  readonly ttlMs: number;
  /** Answers kept at most; the oldest goes first. */
  readonly maxEntries: number;
  /** A clock that only moves forward, in ms. */
  readonly now: () => number;
}

export function createAnswerCache<T>(options: AnswerCacheOptions): AnswerCache<T> {
  const entries = new Map<string, { readonly at: number; readonly answer: Promise<T> }>();
  return {
    get(key, compute) {
      if (options.ttlMs <= 0 || options.maxEntries <= 0) return compute();
      const time = options.now();
      const known = entries.get(key);
      if (known && time - known.at < options.ttlMs) return known.answer;
      entries.delete(key);
      // Insertion order is age order: the first entries are the oldest (expired ones first among them).
      while (entries.size >= options.maxEntries) {
        const oldest = entries.keys().next();
        if (oldest.done === true) break;
        entries.delete(oldest.value);
      }
      const answer = compute();
      const entry = { at: time, answer };
      entries.set(key, entry);
      // A failure is not kept: the next caller tries again (the callers waiting now see it).
      answer.catch(() => {
        if (entries.get(key) === entry) entries.delete(key);
      });
      return answer;
    },
  };
}
