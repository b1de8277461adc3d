/**
 * The parent's handle on a fan-out load client (`fanout-client.ts`) in its own process, so the
 * subscribers' CPU is neither the server's nor the publisher's, and can be reported on its own.
 */
import { fork } from 'node:child_process';
import type { SubscribePayload } from 'graphql-ws';
import { childStopper, createIpcRequester, pauseChild, resumeChild } from './child-ipc.ts';
import type { ClientReply, ClientRequest, StepReport } from './fanout-protocol.ts';
import type { FrameCheckName } from './frame-checks.ts';

export interface OpenOptions {
  /** `ws://127.0.0.1:port/path` */
  readonly url: string;
  readonly sockets: number;
  /** One operation for every socket, or socket i's at `i mod length`. */
  readonly subscribe: SubscribePayload | readonly SubscribePayload[];
  /** Frames containing this are dropped unread. @default none */
  readonly ignore?: string;
  /** The sockets on several topics, each with its own `connection_init` payload. @default one topic */
  readonly spread?: SocketSpread;
  /** What every event frame must be (`frame-checks.ts`). @default none */
  readonly frameCheck?: FrameCheckName;
}

export interface FanoutClient {
  /** The load client's process id (for its CPU time). */
  readonly pid: number;
  /** Opens the sockets, each with one `subscribe` (see `OpenOptions`); resolves with how many. */
  open(options: OpenOptions): Promise<number>;
  /**
   * Starts a step: events from `firstSeq` on are counted; an earlier one only when it is a second
   * copy (see `fanout-ledger.ts`). One frame in `checkEvery` is matched whole. @default checkEvery 1
   */
  expect(firstSeq: number, checkEvery?: number): Promise<void>;
  /**
   * Ends a step at `lastSeq`: waits (at most `timeoutMs`) until every open socket has received
   * every event of the step (`until: 'every'`) or just `lastSeq` (`'last'`).
   */
  collect(lastSeq: number, until: 'every' | 'last', timeoutMs: number): Promise<StepReport>;
  /** Suspends the process (SIGSTOP), its sockets held: while another peer is measured. */
  pause(): void;
  /** Resumes it (SIGCONT). */
  resume(): void;
  /** Closes the sockets and ends the process; kills it if it does not exit in time. Idempotent. */
  stop(): Promise<void>;
}

/** How sockets are spread over topics: socket i is on topic `i mod topics` and sends `connectionPayloads[i mod length]`. */
export interface SocketSpread {
  /** @default 1 */
  readonly topics?: number;
  /** @default [{}] */
  readonly connectionPayloads?: readonly Readonly<Record<string, unknown>>[];
}

export interface FanoutClientOptions {
  /** Handshakes in flight at once while opening. @default 50 */
  readonly parallel?: number;
  /** Time the client has to close its sockets and exit, in ms. @default 10000 */
  readonly stopTimeoutMs?: number;
}

const CLIENT_SCRIPT = new URL('./fanout-client.ts', import.meta.url);

export function startFanoutClient(options: FanoutClientOptions = {}): FanoutClient {
  const child = fork(CLIENT_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = createIpcRequester<ClientRequest, ClientReply>(child, 'load client', (reply) => (reply.type === 'failed' ? reply.message : undefined));

  return {
    pid: child.pid ?? -1,
    async open({ url, sockets, subscribe, ignore, spread, frameCheck }) {
      const reply = await ask({
        type: 'open',
        url,
        sockets,
        parallel: options.parallel ?? 50,
        subscriptions: isSubscribePayload(subscribe) ? [subscribe] : subscribe,
        ...(ignore !== undefined && { ignore }),
        ...(frameCheck !== undefined && { frameCheck }),
        ...(spread?.topics !== undefined && { topics: spread.topics }),
        ...(spread?.connectionPayloads !== undefined && { connectionPayloads: spread.connectionPayloads }),
      });
      if (reply.type !== 'opened') throw new Error(`load client: expected opened, got ${reply.type}`);
      return reply.sockets;
    },
    async expect(firstSeq, checkEvery = 1) {
      await ask({ type: 'expect', firstSeq, checkEvery });
    },
    async collect(lastSeq, until, timeoutMs) {
      const reply = await ask({ type: 'collect', lastSeq, until, timeoutMs });
      if (reply.type !== 'collected') throw new Error(`load client: expected collected, got ${reply.type}`);
      return reply.report;
    },
    pause: () => pauseChild(child),
    resume: () => resumeChild(child),
    stop: childStopper(child, () => ask({ type: 'close' }), options.stopTimeoutMs ?? 10_000),
  };
}

function isSubscribePayload(value: SubscribePayload | readonly SubscribePayload[]): value is SubscribePayload {
  return !Array.isArray(value);
}
