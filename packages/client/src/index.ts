/**
 * @tributary/client — a typed client for Tributary over graphql-ws (see README.md):
 * `createClient({ url, getToken })`, connection states, resume from the last cursor, token refresh
 * on the live socket, `subscribeEvents`, `publish` (retried safely), `joinChannel` and `broadcast`, `subscribeDocument` and the
 * document writes (`createDocument`, `updateDocument`…), `liveModel`, `request` (a typed document or the operation's text),
 * and the server-to-server `subscribeModel`.
 */
export { createClient, DEFAULT_MAX_MESSAGE_BYTES } from './client.ts';
export type { ClientOptions, TributaryClient } from './client.ts';
export type { ConnectionState } from './connection-state.ts';
export { backoffDelay, backoffWindow, DEFAULT_BACKOFF } from './backoff.ts';
export type { BackoffOptions } from './backoff.ts';
export { isMessageTooLarge, isPermissionRevoked, MessageTooLargeError, SessionEndedError, TokenExpiredError, TributaryRequestError } from './errors.ts';
export type { GraphQLErrorLike } from './errors.ts';
export type { EventsSubscription, SubscribeEventsOptions, TopicEvent } from './events.ts';
export { isRetryablePublishError, PUBLISH_RETRY } from './publish.ts';
export type { PublishedEvent, PublishOptions } from './publish.ts';
export type { ChannelMembership, ChannelMessage, JoinChannelOptions } from './channel.ts';
export type { BroadcastOptions } from './broadcast.ts';
export type { DocumentSubscription, LiveDocument, SubscribeDocumentOptions } from './document.ts';
export { isRevisionConflict, UPDATE_DOCUMENT_ATTEMPTS } from './document-writes.ts';
export type { CreateDocumentOptions, DocumentData, DocumentUpdate, DocumentWrites, StoredDocument, UpdateDocumentOptions, WriteDocumentOptions } from './document-writes.ts';
export { LiveModelStore } from './live-model-store.ts';
export type { AwaitedRow, ChangeListener, LiveModelSnapshot, LiveModelStatus, ModelChange, ModelRecord } from './live-model-store.ts';
export type { LiveModel, LiveModelOptions, ModelFilter } from './live-model.ts';
export { subscribeModel } from './subscribe-model.ts';
export type { ModelChangeEvent, ModelOperation, ModelSubscription, SubscribeModelOptions } from './subscribe-model.ts';
export type { GetToken } from './token-refresh.ts';
export * as documents from './generated.ts';
