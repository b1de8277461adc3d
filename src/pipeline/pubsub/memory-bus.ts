import type { RealtimeEvent } from '../events/envelope.ts';
import type { StreamRef } from '../stream.ts';
import type { EventBus, EventListener } from './event-bus.ts';

export interface MemoryBus extends EventBus {
  /** Hands an event to the stream's listeners, synchronously, in call order. */
  deliver(stream: StreamRef, event: RealtimeEvent): void;
}

/** The single-process bus of the embedded mode. */
export function createMemoryBus(): MemoryBus {
  const listeners = new Map<string, Set<EventListener>>();
  return {
    deliver(stream, event) {
      const joined = listeners.get(stream.key);
      if (!joined) return;
      for (const listener of joined) listener(event);
    },
    join(stream, listener) {
      let joined = listeners.get(stream.key);
      if (!joined) {
        joined = new Set();
        listeners.set(stream.key, joined);
      }
      const set = joined;
      set.add(listener);
      return Promise.resolve(() => {
        set.delete(listener);
        if (set.size === 0 && listeners.get(stream.key) === set) listeners.delete(stream.key);
      });
    },
    // In one process the link cannot break.
    watch: () => () => undefined,
  };
}
