/**
 * The servers a benchmark compares. Every peer serves the same operations (`viewer`, `channel`,
 * `broadcast`) over graphql-transport-ws at `path` on 127.0.0.1, so one load client drives them all.
 * This module has no server imports: the parent process reads the names without loading a server.
 */

/** Tributary itself, then the reference stack it is measured against. */
export const PEER_NAMES = ['tributary', 'yoga-graphql-ws'] as const;

export type PeerName = (typeof PEER_NAMES)[number];

/** The peer the ratios are taken against (`ours/peer`). */
export const OURS: PeerName = 'tributary';

export function isPeerName(value: string): value is PeerName {
  return (PEER_NAMES as readonly string[]).includes(value);
}

/** A peer server running in this process. */
export interface RunningPeer {
  readonly port: number;
  /** WebSocket path of the GraphQL endpoint, e.g. `/graphql`. */
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
export type ParentMessage = { readonly type: 'cpu'; readonly requestId: number } | { readonly type: 'stop' };

/** Child → parent over the IPC channel. */
export interface CpuReply {
  readonly type: 'cpu';
  readonly requestId: number;
  /** `process.cpuUsage()` of the server process, in µs. */
  readonly user: number;
  readonly system: number;
}
