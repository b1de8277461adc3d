/**
 * A fake TributaryClient for the hooks' unit tests: live models are real `LiveModelStore`s the
 * test feeds; every `liveModel`, `subscribeDocument` and `subscribeEvents` call stands for one
 * server subscription and is counted, with its `close`.
 */
import { LiveModelStore, type JoinChannelOptions, type LiveDocument, type LiveModel, type LiveModelOptions, type SubscribeDocumentOptions, type SubscribeEventsOptions, type TributaryClient } from '@tributary/client';

export interface FakeModel {
  readonly model: string;
  readonly options: LiveModelOptions;
  readonly store: LiveModelStore;
  closed: boolean;
}

export interface FakeStream<O> {
  readonly key: string;
  readonly options: O;
  closed: boolean;
}

export interface FakeClient {
  readonly client: TributaryClient;
  readonly models: FakeModel[];
  readonly documents: FakeStream<SubscribeDocumentOptions>[];
  readonly events: FakeStream<SubscribeEventsOptions>[];
  readonly channels: FakeStream<JoinChannelOptions>[];
  /** Every document write asked for: the client method and its arguments (each answers a stored document echoing them). */
  readonly writes: { readonly method: string; readonly args: readonly unknown[] }[];
  /** Subscriptions open now (models, documents, events and channels). */
  open(): number;
}

export function createFakeClient(): FakeClient {
  const models: FakeModel[] = [];
  const documents: FakeStream<SubscribeDocumentOptions>[] = [];
  const events: FakeStream<SubscribeEventsOptions>[] = [];
  const channels: FakeStream<JoinChannelOptions>[] = [];
  const writes: { method: string; args: readonly unknown[] }[] = [];
  /** A write recorded, answered with a stored document of its service and id. */
  const write =
    (method: string) =>
    (...args: unknown[]) => {
      writes.push({ method, args });
      const [service, id] = args;
      return Promise.resolve({ service, id: typeof id === 'string' ? id : 'generated', revision: 1, data: {}, createdAt: '', updatedAt: '' });
    };
  const client: Partial<TributaryClient> = {
    createDocument: write('createDocument') as TributaryClient['createDocument'],
    replaceDocument: write('replaceDocument') as TributaryClient['replaceDocument'],
    mergeDocument: write('mergeDocument') as TributaryClient['mergeDocument'],
    deleteDocument: write('deleteDocument') as TributaryClient['deleteDocument'],
    updateDocument: write('updateDocument') as TributaryClient['updateDocument'],
    state: 'connected',
    onStateChange: () => () => {},
    liveModel<R extends object>(model: string, options: LiveModelOptions<R> = {}): LiveModel<R> {
      const store = new LiveModelStore();
      const entry: FakeModel = { model, options: options as LiveModelOptions, store, closed: false };
      models.push(entry);
      // As the client's handle does: change listeners per handle, from the store's applied changes.
      store.onChange((change, previous) => {
        if (change.operation === 'DELETED') options.onDeleted?.((previous ?? change.record) as R, change as never);
        else if (change.operation === 'CREATED') options.onCreated?.(change.record as R, change as never);
        else options.onUpdated?.(change.record as R, change as never);
      });
      const handle = {
        getSnapshot: () => store.getSnapshot(),
        subscribe: (listener: () => void) => store.subscribe(listener),
        close: () => {
          entry.closed = true;
        },
      };
      return handle as unknown as LiveModel<R>;
    },
    subscribeDocument(service: string, id: string, options: SubscribeDocumentOptions) {
      const entry = { key: `${service}/${id}`, options, closed: false };
      documents.push(entry);
      return {
        current: undefined as LiveDocument | undefined,
        close: () => {
          entry.closed = true;
        },
      };
    },
    subscribeEvents(topic: string, options: SubscribeEventsOptions) {
      const entry = { key: topic, options, closed: false };
      events.push(entry);
      return {
        cursor: undefined,
        close: () => {
          entry.closed = true;
        },
      };
    },
    joinChannel<T>(name: string, options: JoinChannelOptions<T>) {
      const entry = { key: name, options: options as JoinChannelOptions, closed: false };
      channels.push(entry);
      return {
        close: () => {
          entry.closed = true;
        },
      };
    },
  };
  return {
    client: client as TributaryClient,
    models,
    documents,
    events,
    channels,
    writes,
    open: () => [...models, ...documents, ...events, ...channels].filter((entry) => !entry.closed).length,
  };
}

/** After the current task: when a released subscription is closed (if nothing took it again). */
export function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
