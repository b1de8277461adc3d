/**
 * The ids seen lately, to drop redeliveries (delivery is at least once; an event delivered again
 * keeps its id). Bounded: past `capacity` ids the oldest is forgotten — a redelivery comes soon
 * after the original (the server replays from the last confirmed position), never thousands of
 * events later.
 */
export interface RecentIds {
  /** Records `id`; false when it was already among the recent ones (a duplicate). */
  add(id: string): boolean;
  /** Whether `id` is among the recent ones (without recording it). */
  has(id: string): boolean;
  readonly size: number;
}

/** @default capacity 10000 */
export function createRecentIds(capacity = 10_000): RecentIds {
  // A Set iterates in insertion order: its first element is the oldest.
  const ids = new Set<string>();
  return {
    add(id) {
      if (ids.has(id)) return false;
      ids.add(id);
      if (ids.size > capacity) {
        const oldest = ids.values().next();
        if (!oldest.done) ids.delete(oldest.value);
      }
      return true;
    },
    has: (id) => ids.has(id),
    get size() {
      return ids.size;
    },
  };
}
