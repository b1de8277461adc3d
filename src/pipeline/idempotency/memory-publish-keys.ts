import type { KeyRecord, PublishKeys, PublishKeyTimes } from './publish-keys.ts';

export interface MemoryPublishKeysOptions extends PublishKeyTimes {
  /** Bytes of records kept at most (their JSON); the oldest are forgotten first beyond it. @default 64 MiB */
  readonly maxBytes?: number;
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number;
}

interface Entry {
  readonly record: KeyRecord;
  readonly expiresAt: number;
  readonly bytes: number;
}

/**
 * The embedded mode's keys: a map in this process, oldest first. Bounded by bytes rather than
 * count (a record holds its event, up to EVENT_MAX_PAYLOAD_BYTES): beyond the bound the oldest
 * keys are forgotten before their time, so under a flood of keyed publishes a key is remembered
 * for less than its lifetime — never more memory than the bound.
 */
export function createMemoryPublishKeys(options: MemoryPublishKeysOptions): PublishKeys {
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
  const put = (id: string, record: KeyRecord, lifetimeMs: number) => {
    forget(id);
    const entry = { record, expiresAt: now() + lifetimeMs, bytes: id.length + JSON.stringify(record).length };
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
      if (entry) return Promise.resolve({ claimed: false, record: entry.record });
      put(id, { state: 'in-flight', fingerprint, token }, options.inFlightMs);
      return Promise.resolve({ claimed: true });
    },
    remember(id, record) {
      put(id, record, options.ttlMs);
      return Promise.resolve();
    },
    release(id, token) {
      const record = live(id)?.record;
      if (record?.state === 'in-flight' && record.token === token) forget(id);
      return Promise.resolve();
    },
    close() {
      entries.clear();
      bytes = 0;
      return Promise.resolve();
    },
  };
}
