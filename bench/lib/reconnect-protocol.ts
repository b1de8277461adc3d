/**
 * The IPC messages between the `reconnect` workload (parent) and its load client
 * (`reconnect-client.ts`, a child process holding N clients). Events carry a global sequence
 * number; event `seq` goes to topic `seq mod topics`, and client i subscribes to topic
 * `i mod topics`, so every client knows exactly which sequence numbers it must receive.
 */

/** Which client library the child runs. */
export type ClientKind = 'sdk' | 'graphql-ws';

export interface OpenRequest {
  readonly type: 'open';
  readonly requestId: number;
  readonly kind: ClientKind;
  /** `ws://127.0.0.1:port/graphql` */
  readonly url: string;
  readonly clients: number;
  readonly topics: number;
  /** Topic names are `${topicPrefix}${n}`. */
  readonly topicPrefix: string;
  /** HS256 secret the client signs its tokens with (the server's `JWT_SECRET`). */
  readonly secret: string;
  /** Clients started at once while opening (each waits for its first connection). */
  readonly parallel: number;
}

/** From now on, events from `firstSeq` on are booked; earlier ones (probes) are not. */
export interface ExpectRequest {
  readonly type: 'expect';
  readonly requestId: number;
  readonly firstSeq: number;
}

/** Waits until every client has received one event at or after `seq` (the probe that proves it is subscribed). */
export interface AwaitSeqRequest {
  readonly type: 'await-seq';
  readonly requestId: number;
  readonly seq: number;
  readonly timeoutMs: number;
}

/**
 * Marks the start of an outage: connection attempts, acknowledgements and first events after
 * this moment are recorded per client (they are read by `collect`).
 */
export interface ArmRequest {
  readonly type: 'arm';
  readonly requestId: number;
}

/** Resolves once every client got an event on a new socket since `arm`, or gave up (or `timeoutMs` passed). */
export interface AwaitResumedRequest {
  readonly type: 'await-resumed';
  readonly requestId: number;
  readonly timeoutMs: number;
}

/** Hands every SDK client a new token in-band (`refreshToken()`), `parallel` at a time. */
export interface RefreshRequest {
  readonly type: 'refresh';
  readonly requestId: number;
  readonly parallel: number;
  readonly timeoutMs: number;
}

/** Waits (at most `timeoutMs`) until every client has every event up to `lastSeq`, then reports. */
export interface CollectRequest {
  readonly type: 'collect';
  readonly requestId: number;
  readonly lastSeq: number;
  readonly timeoutMs: number;
}

export interface CloseRequest {
  readonly type: 'close';
  readonly requestId: number;
}

export type LoadRequest = OpenRequest | ExpectRequest | AwaitSeqRequest | ArmRequest | AwaitResumedRequest | RefreshRequest | CollectRequest | CloseRequest;

/** Delivery of the events expected since `expect`, over all clients. */
export interface DeliveryReport {
  readonly clients: number;
  /** Events every client should have received, summed. */
  readonly expected: number;
  readonly received: number;
  /** Expected events never received (skipped over, or still missing at the end). */
  readonly lost: number;
  /** Events handed to the application a second time. */
  readonly duplicates: number;
  /** Events that arrived after a later one of the same topic. */
  readonly outOfOrder: number;
  /** Clients that lost at least one event. */
  readonly clientsWithLoss: number;
}

/** What `arm` started recording, as `clockMillis()` times. */
export interface OutageRecord {
  /** Every connection attempt (a WebSocket constructed) after `arm`. */
  readonly attempts: readonly number[];
  /** How the attempts that ended ended (`failed before open (ECONNREFUSED)`, `closed after open (1006)`…), with counts. */
  readonly outcomes: Readonly<Record<string, number>>;
  /** Per client: its first acknowledged socket after it lost one since `arm` (NaN if none). */
  readonly connectedAt: readonly number[];
  /** Per client: its first event on that socket (NaN if none). */
  readonly resumedAt: readonly number[];
  /** Clients that stopped retrying for good. */
  readonly gaveUp: number;
}

export interface RefreshReport {
  readonly refreshed: number;
  readonly failed: number;
  readonly firstFailure: string | undefined;
  readonly startedAt: number;
  readonly finishedAt: number;
  /** The load client's CPU over the refreshes, in µs (token signing included). */
  readonly clientCpuMicros: number;
}

export type LoadReply =
  | { readonly type: 'opened'; readonly requestId: number; readonly clients: number }
  | { readonly type: 'done'; readonly requestId: number; readonly missing: number }
  | { readonly type: 'refreshed'; readonly requestId: number; readonly report: RefreshReport }
  | {
      readonly type: 'collected';
      readonly requestId: number;
      readonly delivery: DeliveryReport;
      readonly outage: OutageRecord;
      /** Errors the clients reported since they were opened (`onError`, a subscription's error, a resync), and the first. */
      readonly clientErrors: number;
      readonly firstClientError: string | undefined;
    }
  | { readonly type: 'closed'; readonly requestId: number }
  | { readonly type: 'failed'; readonly requestId: number; readonly message: string };
