/**
 * The parent's handle on a fan-out load client (`fanout-client.ts`) in its own process, so the
 * subscribers' CPU is neither the server's nor the publisher's, and can be reported on its own.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { SubscribePayload } from 'graphql-ws';
import type { ClientReply, ClientRequest, StepReport } from './fanout-protocol.ts';

export interface FanoutClient {
  readonly pid: number;
  /**
   * Opens `sockets` sockets to `url`, each with one `subscribe`; resolves with how many. Frames
   * containing `ignore` are dropped unread; `spread` puts the sockets on several topics, each
   * with its own `connection_init` payload (see `fanout-protocol.ts`).
   */
  open(url: string, sockets: number, subscribe: SubscribePayload, ignore?: string, spread?: SocketSpread): Promise<number>;
  /** Starts a step: events from `firstSeq` on are counted, earlier ones are stale. */
  expect(firstSeq: number): Promise<void>;
  /**
   * Ends a step at `lastSeq`: waits (at most `timeoutMs`) until every open socket has received
   * every event of the step (`until: 'every'`) or just `lastSeq` (`'last'`).
   */
  collect(lastSeq: number, until: 'every' | 'last', timeoutMs: number): Promise<StepReport>;
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

/** A request before the requester numbers it. */
type RequestBody = DistributiveOmit<ClientRequest, 'requestId'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export function startFanoutClient(options: FanoutClientOptions = {}): FanoutClient {
  const child = fork(CLIENT_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = once(child, 'exit').then(() => undefined);
  const ask = createRequester(child);
  let stopping: Promise<void> | undefined;

  return {
    pid: child.pid ?? -1,
    async open(url, sockets, subscribe, ignore, spread) {
      const reply = await ask({
        type: 'open',
        url,
        sockets,
        parallel: options.parallel ?? 50,
        subscribe,
        ...(ignore !== undefined && { ignore }),
        ...(spread?.topics !== undefined && { topics: spread.topics }),
        ...(spread?.connectionPayloads !== undefined && { connectionPayloads: spread.connectionPayloads }),
      });
      if (reply.type !== 'opened') throw new Error(`load client: expected opened, got ${reply.type}`);
      return reply.sockets;
    },
    async expect(firstSeq) {
      await ask({ type: 'expect', firstSeq });
    },
    async collect(lastSeq, until, timeoutMs) {
      const reply = await ask({ type: 'collect', lastSeq, until, timeoutMs });
      if (reply.type !== 'collected') throw new Error(`load client: expected collected, got ${reply.type}`);
      return reply.report;
    },
    stop: () =>
      (stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const timer = setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs ?? 10_000);
        if (child.connected) await ask({ type: 'close' }).catch(() => undefined);
        await exited;
        clearTimeout(timer);
      })()),
  };
}

/** Request/reply over the IPC channel, matched by `requestId`; a `failed` reply rejects. */
function createRequester(child: ChildProcess): (request: RequestBody) => Promise<ClientReply> {
  let nextId = 0;
  const waiting = new Map<number, { resolve: (reply: ClientReply) => void; reject: (error: Error) => void }>();
  child.on('message', (reply: ClientReply) => {
    const waiter = waiting.get(reply.requestId);
    waiting.delete(reply.requestId);
    if (reply.type === 'failed') waiter?.reject(new Error(`load client: ${reply.message}`));
    else waiter?.resolve(reply);
  });
  child.once('exit', (code, signal) => {
    for (const { reject } of waiting.values()) reject(new Error(`load client exited (${signal ?? code})`));
    waiting.clear();
  });
  return (request) =>
    new Promise<ClientReply>((resolve, reject) => {
      if (!child.connected) {
        reject(new Error('load client process is gone'));
        return;
      }
      const requestId = nextId++;
      waiting.set(requestId, { resolve, reject });
      child.send({ ...request, requestId });
    });
}
