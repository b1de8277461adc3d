/**
 * The servers a benchmark compares. Every GraphQL peer serves the same operations (`viewer`,
 * `channel`, `broadcast`, `events`, `publish`, `createDocument`, `mergeDocument`, `document`) over graphql-transport-ws at `path` on 127.0.0.1
 * and over HTTP POST at the same path, so one load client drives them all (`plain-graphql-ws`
 * only `viewer`, `events` and `publish`: the fan-out workload's); `raw-ws` is not a
 * GraphQL server but the floor of the fan-out workload (see `raw-ws.ts`), and
 * `pg-redis-graphql-ws` serves only `changes(model:)`, from a database's WAL (the `cdc`
 * workload, see `pg-redis-graphql-ws.ts`). This module has no server imports: the parent
 * process reads the names without loading a server.
 */

/**
 * Tributary itself (in-memory mode, and the same with analytics off to measure what counting costs; Redis mode, whose documents are written through to the
 * database before a mutation answers; Redis mode with async document durability), then what it
 * is measured against.
 */
export const PEER_NAMES = [
  'tributary',
  'tributary-no-analytics',
  'tributary-redis',
  'tributary-redis-async',
  'yoga-graphql-ws',
  'plain-graphql-ws',
  'raw-ws',
  'pg-redis-graphql-ws',
] as const;

/** The peers that need `REDIS_URL`. */
export const REDIS_PEERS: readonly PeerName[] = ['tributary-redis', 'tributary-redis-async', 'pg-redis-graphql-ws'];

/** The reference CDC stack: pg-logical-replication → graphql-redis-subscriptions → graphql-ws. */
export const CDC_REFERENCE: PeerName = 'pg-redis-graphql-ws';

export type PeerName = (typeof PEER_NAMES)[number];

/** The peer the ratios are taken against (`ours/peer`). */
export const OURS: PeerName = 'tributary';

/** The reference stack Tributary replaces: graphql-yoga + graphql-ws, as yoga documents it. */
export const REFERENCE: PeerName = 'yoga-graphql-ws';

/**
 * The lighter Node GraphQL stack: graphql-ws `useServer({ schema })` + graphql-js +
 * graphql-subscriptions' `PubSub`, no yoga or envelop in the path (see `plain-graphql-ws.ts`).
 */
export const LIGHT_REFERENCE: PeerName = 'plain-graphql-ws';

/** The floor no GraphQL server can beat: plain `ws`, one frame per event, batched writes. */
export const LIMIT: PeerName = 'raw-ws';

export function isPeerName(value: string): value is PeerName {
  return (PEER_NAMES as readonly string[]).includes(value);
}

/** A peer server running in this process. */
export interface RunningPeer {
  readonly port: number;
  /** WebSocket path of the GraphQL endpoint, e.g. `/graphql`; HTTP POST is served at the same path. */
  readonly path: string;
  /** Closes every socket and the listener. Idempotent. */
  dispose(): Promise<void>;
}

/** What `serve.ts` prints as its first stdout line once it listens. */
export interface ReadyLine {
  readonly port: number;
  readonly path: string;
}

/** Parent → child over the IPC channel. */
export type ParentMessage =
  | { readonly type: 'cpu'; readonly requestId: number }
  | { readonly type: 'memory'; readonly requestId: number }
  | { readonly type: 'stop' };

/** Child → parent: the answer to `cpu`. */
export interface CpuReply {
  readonly type: 'cpu';
  readonly requestId: number;
  /** `process.cpuUsage()` of the server process, in µs. */
  readonly user: number;
  readonly system: number;
}

/** Child → parent: the answer to `memory`, sampled after a full garbage collection. */
export interface MemoryReply {
  readonly type: 'memory';
  readonly requestId: number;
  /** Resident set size, in bytes. */
  readonly rss: number;
  /** V8 heap in use, in bytes. */
  readonly heapUsed: number;
  /** Memory of C++ objects bound to JS ones, `Buffer`s included, in bytes. */
  readonly external: number;
  /** False when the child could not collect garbage first (no `--expose-gc`): numbers include garbage. */
  readonly collected: boolean;
}

export type ChildMessage = CpuReply | MemoryReply;
