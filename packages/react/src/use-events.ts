/**
 * `useEvents(topic, { where, onEvent })`: a topic's events as they arrive — the last `keep` of
 * them, and `onEvent` for each once (by event id), resumed across sockets by the client. Shared per
 * client, topic, filter, start and `keep`: one server subscription however many components listen.
 * A resync, or a new login of another user on the client, empties `events`: they no longer follow on
 * from what comes next (or were the previous user's).
 */
import { useInsertionEffect, useRef } from 'react';
import { isPermissionRevoked, type SubscribeEventsOptions, type TopicEvent, type TributaryClient } from '@tributary/client';

// Not exported by name from @tributary/client.
type EventWhere = NonNullable<SubscribeEventsOptions['where']>;
import { ExternalStore } from './external-store.ts';
import { callEach } from './fan-out.ts';
import { useTributaryClient } from './provider.ts';
import { stableKey, type Shared, type SharedRegistry } from './shared-registry.ts';
import { useServerRender } from './server-render.ts';
import { useSharedStore } from './use-shared-store.ts';

/** `P`: the events' payload type you expect (your promise, not checked). */
export interface UseEventsOptions<P = unknown> {
  /** The server-side filter (`{ field: 'payload.status', eq: 'paid' }`…). Compared by value. */
  readonly where?: EventWhere;
  /** Start after this cursor (an event's `cursor`). @default the topic's position when subscribing */
  readonly after?: string;
  /** Each event once, in the topic's order; the latest function is called (no resubscription). */
  readonly onEvent?: (event: TopicEvent<P>) => void;
  /**
   * The history could not be resumed (or the client's user changed): refetch what you derived from
   * the events. A promise is awaited — with every mounted component's — before the stream goes on,
   * so no event arrives before the refetch is done; one that rejects is tried again after a pause.
   */
  readonly onResync?: () => void | Promise<void>;
  /** Events kept in `events` (the newest). @default 100 */
  readonly keep?: number;
  /** False: no subscription; `status` is `idle`. @default true */
  readonly enabled?: boolean;
}

export interface UseEventsResult<P = unknown> {
  /** The last `keep` events, oldest first; the same array until one arrives. */
  readonly events: readonly TopicEvent<P>[];
  readonly lastEvent: TopicEvent<P> | undefined;
  /**
   * `listening` while subscribed (before the first event too), `error` when it stopped for good,
   * `idle` while disabled — and on the server, where nothing is subscribed (and while hydrating
   * what the server rendered, until the browser subscribes).
   */
  readonly status: 'idle' | 'listening' | 'error';
  /**
   * Why it stopped (`status: 'error'`); or, while `listening`, why it is not served now while the
   * client retries — a refusal such as RATE_LIMITED, or the connection `unauthorized` (a
   * SessionEndedError with its close code) — null again once it is.
   */
  readonly error: Error | null;
}

type Callbacks = Pick<UseEventsOptions, 'onEvent' | 'onResync'>;

interface SharedEvents {
  readonly store: ExternalStore<UseEventsResult>;
  readonly callbacks: Set<{ readonly current: Callbacks }>;
}

const registries = new WeakMap<TributaryClient, SharedRegistry<SharedEvents>>();

const EMPTY: readonly TopicEvent[] = Object.freeze([]);
const LISTENING: UseEventsResult = Object.freeze({ events: EMPTY, lastEvent: undefined, status: 'listening', error: null });
const IDLE: UseEventsResult = Object.freeze({ ...LISTENING, status: 'idle' });

const clearEvents = (current: UseEventsResult): UseEventsResult => ({ ...current, events: EMPTY, lastEvent: undefined });

function openShared(client: TributaryClient, topic: string, options: UseEventsOptions, keep: number): Shared<SharedEvents> {
  const store = new ExternalStore<UseEventsResult>(LISTENING);
  const callbacks = new Set<{ readonly current: Callbacks }>();
  const subscription = client.subscribeEvents(topic, {
    ...(options.where === undefined ? {} : { where: options.where }),
    ...(options.after === undefined ? {} : { after: options.after }),
    onEvent: (event) => {
      store.update((current) => ({ ...current, events: Object.freeze([...current.events.slice(Math.max(0, current.events.length - keep + 1)), event]), lastEvent: event }));
      callEach(callbacks, (current) => current.onEvent?.(event));
    },
    onResync: async () => {
      store.update(clearEvents);
      // Every component's refetch (started at once; one that throws rejects), each allowed to
      // finish: one failing does not cut another short, nor lets the stream go on meanwhile.
      const refetches = [...callbacks].map(async (ref) => {
        await ref.current.onResync?.();
      });
      const failure = (await Promise.allSettled(refetches)).find((outcome) => outcome.status === 'rejected');
      if (failure) throw failure.reason;
    },
    onReset: () => store.update(clearEvents),
    onError: (error) => {
      const reason = error instanceof Error ? error : new Error(String(error));
      // A refreshed token that may no longer read the topic: its events go, as after a new login.
      store.update((current) => ({ ...(isPermissionRevoked(error) ? clearEvents(current) : current), status: 'error', error: reason }));
    },
    onRetry: (error) => store.update((current) => ({ ...current, error })),
    onResume: () => store.update((current) => (current.error === null ? current : { ...current, error: null })),
  });
  return { value: { store, callbacks }, dispose: () => subscription.close() };
}

/** `P`: the events' payload type you expect (`useEvents<OrderStatus>('orders.status')`), your promise, not checked. */
export function useEvents<P = unknown>(topic: string, options: UseEventsOptions<P> = {}): UseEventsResult<P> {
  const client = useTributaryClient();
  const enabled = options.enabled ?? true;
  const keep = Math.max(1, Math.floor(options.keep ?? 100));
  const key = stableKey([topic, options.where ?? null, options.after ?? null, keep]);

  // Shared per key: the payload type is each caller's promise about the same events.
  const callbacks = useRef<Callbacks>(options as Callbacks);
  useInsertionEffect(() => {
    callbacks.current = options as Callbacks;
  });

  // `listening` is the shared store's state before it holds anything; on the server there is no
  // store to hold (effects never run there): `idle` says what is so.
  const serverRender = useServerRender();
  const result = useSharedStore({
    registries,
    client,
    key,
    enabled,
    open: () => openShared(client, topic, options as UseEventsOptions, keep),
    source: (shared) => shared.store,
    attach: (shared) => {
      shared.callbacks.add(callbacks);
      return () => shared.callbacks.delete(callbacks);
    },
    pending: LISTENING,
    idle: IDLE,
  });
  return (serverRender ? IDLE : result) as UseEventsResult<P>;
}
