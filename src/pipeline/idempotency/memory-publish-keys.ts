import { inFlightRecord, type KeyRecord, type PublishKeys, type PublishKeyTimes } from './publish-keys.ts';

export interface MemoryPublishKeysOptions extends PublishKeyTimes {
  /** Bytes of records kept at most (their JSON); the oldest are forgotten first beyond it. @default 64 MiB */
  readonly maxBytes?: number;
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number;
}

export interface MemoryPublishKeys extends PublishKeys {
  /** Bytes of records held now (keys and JSON). */
  readonly bytes: number;
}

interface Entry {
  /** The record as JSON, as Redis keeps it: each read is a copy, and its size is known. */
  readonly json: string;
  readonly expiresAt: number;
  readonly bytes: number;
}

/**
 * The embedded mode's keys: a map in this process, oldest first. Bounded by bytes (of the
 * records' JSON) rather than count: beyond the bound the oldest keys are forgotten before their
 * time — under a flood of keyed publishes a key is remembered for less than its lifetime, and a
 * retry of a forgotten one places its event again, under the same id.
 */
export function createMemoryPublishKeys(options: MemoryPublishKeysOptions): MemoryPublishKeys {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let bytes = 0;

  const forget = (id: string) => {
    const entry = entries.get(id);
    if (!entry) return;
    entries.delete(id);
    bytes -= entry.bytes;
  };
  const live = (id: string): Entry | undefined => {
    const entry = entries.get(id);
    if (entry && entry.expiresAt <= now()) {
      forget(id);
      return undefined;
    }
    return entry;
  };
  const put = (id: string, json: string, lifetimeMs: number) => {
    forget(id);
    const entry = { json, expiresAt: now() + lifetimeMs, bytes: Buffer.byteLength(id) + Buffer.byteLength(json) };
    // Newest last: a map iterates in insertion order, so the oldest are at its front.
    entries.set(id, entry);
    bytes += entry.bytes;
    for (const oldest of entries.keys()) {
      if (bytes <= maxBytes || oldest === id) break;
      forget(oldest);
    }
  };

  return {
    claim(id, fingerprint, token) {
      const entry = live(id);
      if (entry) return Promise.resolve({ claimed: false, record: JSON.parse(entry.json) as KeyRecord });
      put(id, inFlightRecord(fingerprint, token), options.inFlightMs);
      return Promise.resolve({ claimed: true });
    },
    remember(id, record) {
      put(id, JSON.stringify(record), options.ttlMs);
      return Promise.resolve();
    },
    release(id, fingerprint, token) {
      if (live(id)?.json === inFlightRecord(fingerprint, token)) forget(id);
      return Promise.resolve();
    },
    close() {
      entries.clear();
      bytes = 0;
      return Promise.resolve();
    },
    get bytes() {
      return bytes;
    },
  };
}
