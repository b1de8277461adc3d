/**
 * The parent's handle on the `reconnect` workload's load client (`reconnect-client.ts`) in its
 * own process: N clients, their sockets and subscriptions, apart from the server it kills and the
 * publisher.
 */
import { fork } from 'node:child_process';
import { childStopper, createIpcRequester } from './child-ipc.ts';
import type { LoadReply, LoadRequest, OpenRequest, RefreshReport } from './reconnect-protocol.ts';

export type CollectedReply = Extract<LoadReply, { type: 'collected' }>;

export interface ReconnectClient {
  readonly pid: number;
  /** Starts the clients, `parallel` at a time, each until its first socket is acknowledged. */
  open(options: Omit<OpenRequest, 'type' | 'requestId'>): Promise<number>;
  /** Books events from `firstSeq` on (a new ledger). */
  expect(firstSeq: number): Promise<void>;
  /** Waits until every client has an event at or after `seq`; resolves with how many have not. */
  awaitSeq(seq: number, timeoutMs: number): Promise<number>;
  /** Starts recording an outage: attempts, acknowledgements, first events. */
  arm(): Promise<void>;
  /** Waits until every client got an event since `arm`; resolves with how many have not. */
  awaitResumed(timeoutMs: number): Promise<number>;
  /** A new token for every SDK client, handed over in-band, `parallel` at a time. */
  refresh(parallel: number, timeoutMs: number): Promise<RefreshReport>;
  /** Waits until every client has every event up to `lastSeq` (at most `timeoutMs`); the delivery and the outage record. */
  collect(lastSeq: number, timeoutMs: number): Promise<CollectedReply>;
  /** Closes the clients and ends the process; kills it if it does not exit in time. Idempotent. */
  stop(): Promise<void>;
}

const CLIENT_SCRIPT = new URL('./reconnect-client.ts', import.meta.url);

export function startReconnectClient(options: { readonly stopTimeoutMs?: number } = {}): ReconnectClient {
  // Up to 5,000 clients and their buffers in one process: more heap than the default, to be safe.
  const child = fork(CLIENT_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...process.execArgv, '--max-old-space-size=4096'] });
  const ask = createIpcRequester<LoadRequest, LoadReply>(child, 'reconnect load client', (reply) => (reply.type === 'failed' ? reply.message : undefined));
  const expectReply = <T extends LoadReply['type']>(reply: LoadReply, type: T): Extract<LoadReply, { type: T }> => {
    if (reply.type !== type) throw new Error(`reconnect load client: expected ${type}, got ${reply.type}`);
    return reply as Extract<LoadReply, { type: T }>;
  };
  return {
    pid: child.pid ?? -1,
    async open(request) {
      return expectReply(await ask({ type: 'open', ...request }), 'opened').clients;
    },
    async expect(firstSeq) {
      expectReply(await ask({ type: 'expect', firstSeq }), 'done');
    },
    async awaitSeq(seq, timeoutMs) {
      return expectReply(await ask({ type: 'await-seq', seq, timeoutMs }), 'done').missing;
    },
    async arm() {
      expectReply(await ask({ type: 'arm' }), 'done');
    },
    async awaitResumed(timeoutMs) {
      return expectReply(await ask({ type: 'await-resumed', timeoutMs }), 'done').missing;
    },
    async refresh(parallel, timeoutMs) {
      return expectReply(await ask({ type: 'refresh', parallel, timeoutMs }), 'refreshed').report;
    },
    async collect(lastSeq, timeoutMs) {
      return expectReply(await ask({ type: 'collect', lastSeq, timeoutMs }), 'collected');
    },
    stop: childStopper(child, () => ask({ type: 'close' }), options.stopTimeoutMs ?? 15_000),
  };
}
