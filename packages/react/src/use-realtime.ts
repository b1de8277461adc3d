/**
 * `useRealtime(model, options)` — seed 004's hook: a model's records, kept current.
 *
 *   const { records, isConnected, lastUpdatedAt } = useRealtime('contacts', {
 *     filter: { status: 'eq.active' },
 *     onCreated: (record) => toast(`New contact ${record.name}`),
 *   });
 *
 * Built on the client's `liveModel` (snapshot, then changes joined at the snapshot's cursor,
 * resumed on every socket, refilled after RESYNC_REQUIRED) through `useSyncExternalStore`. Every
 * component using the same model and filter under one client shares one live model — one server
 * subscription — released after the last of them unmounts (after the current task, so
 * StrictMode's mount, unmount, mount keeps it).
 *
 * Callbacks are read through a ref: a new inline function on every render does not resubscribe,
 * and the latest one is called. Each is called at most once per event id (the store applies a
 * change once), and never for the rows a snapshot brings.
 */
import { useInsertionEffect, useMemo, useRef } from 'react';
import type { LiveModel, LiveModelSnapshot, LiveModelStatus, ModelChange, ModelFilter, ModelRecord, TributaryClient } from '@tributary/client';
import { callEach } from './fan-out.ts';
import { useTributaryClient } from './provider.ts';
import { stableKey, type Shared, type SharedRegistry } from './shared-registry.ts';
import { useSharedStore } from './use-shared-store.ts';

export interface UseRealtimeOptions<R extends object = ModelRecord> {
  /** Evaluated by the server (seed 004's syntax: `{ status: 'eq.active' }`). Compared by value, not identity. */
  readonly filter?: ModelFilter;
  /** A record created (a change from the stream, not a row of the snapshot). */
  readonly onCreated?: (record: R, change: ModelChange<R>) => void;
  readonly onUpdated?: (record: R, change: ModelChange<R>) => void;
  /** A record deleted or soft-deleted: the record as last held (or what the delete carried). */
  readonly onDeleted?: (record: R, change: ModelChange<R>) => void;
  /** False: no subscription; `status` is `idle`. @default true */
  readonly enabled?: boolean;
}

/** The live model's status, or `idle` while the hook is disabled. */
export type RealtimeStatus = LiveModelStatus | 'idle';

export interface UseRealtimeResult<R extends object = ModelRecord> {
  /** The records in snapshot order (primary key), records created later after them; the same array until one changes. */
  readonly records: readonly R[];
  /**
   * The live path is up: snapshot loaded and the change stream subscribed on the current socket
   * with no refusal of it known — after a refusal, not before the server answered a probe sent
   * after the retried subscribe (or a change came). Not merely a socket open; false while the
   * server refuses it, and false again if a refusal it decides later (a rate checked in Redis) comes.
   */
  readonly isConnected: boolean;
  /** Commit time of the last change applied, or when the last snapshot was read (ISO 8601); null before the first. */
  readonly lastUpdatedAt: string | null;
  readonly status: RealtimeStatus;
  /**
   * Why the live model stopped (status `error`: FORBIDDEN, an unknown model…; after a revoked
   * permission without its records); with status `unauthorized`, why the server refused the token
   * (a SessionEndedError: its close code, and its `reason` in the server's words — nothing is
   * tried again until `client.reconnect()`); or, with `loading`, `reconnecting` or `resyncing`,
   * why it is not served now while the client retries (a refusal such as RATE_LIMITED). Null
   * once it is live.
   */
  readonly error: Error | null;
}

type Callbacks = Pick<UseRealtimeOptions, 'onCreated' | 'onUpdated' | 'onDeleted'>;

/** A live model shared by the hooks of one client with the same model and filter. */
interface SharedModel {
  readonly model: LiveModel;
  /** The mounted hooks' callbacks (refs: the latest function of each). */
  readonly callbacks: Set<{ readonly current: Callbacks }>;
}

const registries = new WeakMap<TributaryClient, SharedRegistry<SharedModel>>();

const LOADING: LiveModelSnapshot = Object.freeze({ records: Object.freeze([]), byId: new Map(), status: 'loading', isLive: false, lastUpdatedAt: null, error: null });
const IDLE_RESULT: UseRealtimeResult = Object.freeze({ records: LOADING.records, isConnected: false, lastUpdatedAt: null, status: 'idle', error: null });

function openShared(client: TributaryClient, modelName: string, filter: ModelFilter | undefined): Shared<SharedModel> {
  const callbacks = new Set<{ readonly current: Callbacks }>();
  // One handle for every hook: the fan-out below calls each mounted hook's latest callback.
  const model = client.liveModel(modelName, {
    ...(filter === undefined ? {} : { filter }),
    onCreated: (record, change) => {
      callEach(callbacks, (current) => current.onCreated?.(record, change));
    },
    onUpdated: (record, change) => {
      callEach(callbacks, (current) => current.onUpdated?.(record, change));
    },
    onDeleted: (record, change) => {
      callEach(callbacks, (current) => current.onDeleted?.(record, change));
    },
  });
  return { value: { model, callbacks }, dispose: () => model.close() };
}

export function useRealtime<R extends object = ModelRecord>(model: string, options: UseRealtimeOptions<R> = {}): UseRealtimeResult<R> {
  const client = useTributaryClient();
  const enabled = options.enabled ?? true;
  const filter = options.filter;
  const key = `${model}\u0000${stableKey(filter ?? null)}`;

  const callbacks = useRef<Callbacks>(options as Callbacks);
  // Before any effect of this commit, so a change delivered right after it calls the latest one.
  useInsertionEffect(() => {
    callbacks.current = options as Callbacks;
  });

  // The key stands for model and filter: a new filter object with the same content keeps the subscription.
  const snapshot = useSharedStore<SharedModel, LiveModelSnapshot | null>({
    registries,
    client,
    key,
    enabled,
    open: () => openShared(client, model, filter),
    source: (shared) => shared.model,
    attach: (shared) => {
      shared.callbacks.add(callbacks);
      return () => shared.callbacks.delete(callbacks);
    },
    pending: LOADING,
    idle: null,
  });

  return useMemo(() => (snapshot === null ? IDLE_RESULT : toResult(snapshot)), [snapshot]) as UseRealtimeResult<R>;
}

function toResult(snapshot: LiveModelSnapshot): UseRealtimeResult {
  return { records: snapshot.records, isConnected: snapshot.isLive, lastUpdatedAt: snapshot.lastUpdatedAt, status: snapshot.status, error: snapshot.error };
}

/** Live models held by the hooks of `client` now (one server subscription each); for tests and diagnostics. */
export function sharedModelCount(client: TributaryClient): number {
  return registries.get(client)?.size ?? 0;
}
