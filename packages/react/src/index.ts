/**
 * @tributary/react — React bindings for @tributary/client (see README.md):
 * `<TributaryProvider client={client}>`, `useRealtime(model, options)` (seed 004's hook),
 * `useDocument(service, id)` (with the document's writes: `create`, `replace`, `merge`, `remove`,
 * `update`), `useEvents(topic, options)`, `useChannel(name, onMessage)` and
 * `useConnectionState()`.
 *
 * Every hook reads an external store through `useSyncExternalStore`, shares one server
 * subscription per key among the components of one client (reference-counted, released after the
 * current task so StrictMode's double mount opens one), and renders a loading state on the server
 * (nothing here touches `window` or opens a socket during server rendering).
 */
export { TributaryProvider, useConnectionState, useTributaryClient } from './provider.ts';
export type { TributaryProviderProps } from './provider.ts';
export { sharedModelCount, useRealtime } from './use-realtime.ts';
export type { RealtimeStatus, UseRealtimeOptions, UseRealtimeResult } from './use-realtime.ts';
export { useDocument } from './use-document.ts';
export type { DocumentMutations, DocumentState, UseDocumentOptions, UseDocumentResult } from './use-document.ts';
export { useEvents } from './use-events.ts';
export type { UseEventsOptions, UseEventsResult } from './use-events.ts';
export { useChannel } from './use-channel.ts';
export type { UseChannelResult } from './use-channel.ts';
