/**
 * Child-process entry: the subscriber side of the fan-out workload, forked by
 * `fanout-client-process.ts`. Opens N graphql-transport-ws sockets (`lean-websocket.ts`) with
 * one subscription each and books every frame in a `DeliveryLedger`: which events each socket
 * received, exactly once or not, in which order, and the latency from `sentAt` to receipt. Per
 * message that is an `indexOf`, two digit loops, a prefix compare, a bitmap test and a histogram
 * increment (and for one frame in `checkEvery`, the whole frame matched: `frame-checks.ts`) —
 * cheap enough that the server, not this process, should be the limit; its CPU is reported with
 * every step so the table can say when it was not.
 *
 * Runs until the parent sends `close` or goes away (IPC disconnect), whichever comes first.
 */
import type { SubscribePayload } from 'graphql-ws';
import { createDeliveryLedger, type Account, type DeliveryLedger } from './fanout-ledger.ts';
import type { ClientReply, ClientRequest } from './fanout-protocol.ts';
import { frameCheck } from './frame-checks.ts';
import { connectLeanWebSocket, type LeanWebSocket } from './lean-websocket.ts';
import { openInBatches } from './open-in-batches.ts';

const PROTOCOL = 'graphql-transport-ws';
const SUBSCRIPTION_ID = '0';
/** Time a socket has to open and be acknowledged, in ms. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Time `close` waits for the closing handshakes before dropping the rest, in ms. */
const CLOSE_TIMEOUT_MS = 2000;

interface Subscriber {
  readonly socket: LeanWebSocket;
  readonly account: Account;
}

/** Replaced by `open`, with the frame check it asks for. */
let ledger: DeliveryLedger = createDeliveryLedger();
const subscribers: Subscriber[] = [];
/** Close code and reason → sockets the server closed. */
const closes: Record<string, number> = {};
/** Set by `close`: sockets closing now are ours, not the server's doing. */
let onOwnClose: (() => void) | undefined;
let stepCpuStart = process.cpuUsage();
/** Frames containing this are dropped unread (`open`'s `ignore`). */
let ignored: Buffer | undefined;

/** Anything but an event: rare, so parsed properly. */
function onControlFrame(subscriber: Subscriber, frame: Buffer): void {
  let message: { type?: unknown; id?: unknown; payload?: unknown };
  try {
    message = JSON.parse(frame.toString('utf8')) as typeof message;
  } catch {
    return;
  }
  if (message.type === 'ping') subscriber.socket.send('{"type":"pong"}');
  else if ((message.type === 'error' || message.type === 'complete' || message.type === 'next') && message.id === SUBSCRIPTION_ID) {
    // A `next` without an event is an execution error: as much a failure as `error`.
    ledger.noteOperationEnd(`${String(message.type)}: ${JSON.stringify(message.payload ?? null).slice(0, 200)}`);
  }
}

/** Where socket i subscribes: its topic (for the ledger) and its `connection_init` payload. */
interface SocketPlan {
  readonly topics: number;
  readonly topic: number;
  readonly init: string;
}

/** Opens one socket, waits for `connection_ack`, subscribes; rejects on failure or timeout. */
async function openSubscriber(url: string, subscribe: SubscribePayload, plan: SocketPlan): Promise<Subscriber> {
  let acknowledged: ((error?: Error) => void) | undefined;
  /** Set once acknowledged and subscribed: from then on frames are events. */
  const subscribed: { subscriber?: Subscriber } = {};
  const socket = await connectLeanWebSocket(
    { url, protocol: PROTOCOL, timeoutMs: HANDSHAKE_TIMEOUT_MS },
    {
      onMessage(frame) {
        const subscriber = subscribed.subscriber;
        if (subscriber) {
          if (ignored !== undefined && frame.includes(ignored)) return;
          if (!ledger.record(subscriber.account, frame)) onControlFrame(subscriber, frame);
        } else if (frame.includes('"connection_ack"')) acknowledged?.();
        else acknowledged?.(new Error(`${url}: expected connection_ack, got ${frame.toString('utf8').slice(0, 200)}`));
      },
      onClose(code, reason) {
        const subscriber = subscribed.subscriber;
        if (!subscriber) {
          acknowledged?.(new Error(`${url}: closed before connection_ack (${code} ${reason})`));
          return;
        }
        ledger.close(subscriber.account);
        if (onOwnClose) {
          onOwnClose();
          return;
        }
        const key = `${code}${reason.length > 0 ? ` ${reason}` : ''}`;
        closes[key] = (closes[key] ?? 0) + 1;
      },
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${url}: no connection_ack within ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
      acknowledged = (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      socket.send(plan.init);
    });
  } catch (error) {
    socket.terminate();
    throw error;
  }
  const subscriber: Subscriber = { socket, account: ledger.open(plan.topics, plan.topic) };
  subscribed.subscriber = subscriber;
  socket.send(JSON.stringify({ id: SUBSCRIPTION_ID, type: 'subscribe', payload: subscribe }));
  return subscriber;
}

async function open(request: Extract<ClientRequest, { type: 'open' }>): Promise<number> {
  const { url, sockets: count, parallel, subscriptions } = request;
  if (subscriptions.length === 0) throw new Error('open: subscriptions is empty');
  if (subscribers.length === 0) ledger = createDeliveryLedger(request.frameCheck === undefined ? {} : { check: frameCheck(request.frameCheck) });
  const topics = request.topics ?? 1;
  const inits = (request.connectionPayloads ?? [{}]).map((payload) => JSON.stringify({ type: 'connection_init', payload }));
  if (inits.length === 0) throw new Error('open: connectionPayloads is empty');
  await openInBatches(
    count,
    parallel,
    (index) => openSubscriber(url, subscriptions[index % subscriptions.length]!, { topics, topic: index % topics, init: inits[index % inits.length]! }),
    (subscriber) => subscribers.push(subscriber),
  );
  return subscribers.length;
}

async function closeAll(): Promise<void> {
  let remaining = subscribers.filter((subscriber) => !subscriber.socket.closed).length;
  if (remaining === 0) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
    onOwnClose = () => {
      remaining -= 1;
      if (remaining > 0) return;
      clearTimeout(timer);
      resolve();
    };
    for (const subscriber of subscribers) if (!subscriber.socket.closed) subscriber.socket.close(1000, 'done');
  });
  for (const subscriber of subscribers) subscriber.socket.terminate();
}

async function handle(request: ClientRequest): Promise<ClientReply> {
  const { requestId } = request;
  switch (request.type) {
    case 'open':
      ignored = request.ignore === undefined ? undefined : Buffer.from(request.ignore);
      return { type: 'opened', requestId, sockets: await open(request) };
    case 'expect':
      ledger.expect(request.firstSeq, request.checkEvery);
      stepCpuStart = process.cpuUsage();
      return { type: 'expecting', requestId };
    case 'collect': {
      const timedOut = await ledger.collect(request.lastSeq, request.until, request.timeoutMs);
      const cpu = process.cpuUsage(stepCpuStart);
      return { type: 'collected', requestId, report: ledger.report({ closes: { ...closes }, clientCpuMicros: cpu.user + cpu.system, timedOut }) };
    }
    case 'close':
      await closeAll();
      return { type: 'closed', requestId };
  }
}

if (!process.send) throw new Error('fanout-client.ts must be started with an IPC channel (child_process.fork)');
process.on('message', (request: ClientRequest) => {
  handle(request).then(
    (reply) => {
      process.send?.(reply);
      if (reply.type === 'closed') process.disconnect();
    },
    (error: unknown) => {
      process.send?.({ type: 'failed', requestId: request.requestId, message: error instanceof Error ? error.message : String(error) } satisfies ClientReply);
    },
  );
});
// The parent went away (it crashed, or it is done): drop every socket and exit.
process.once('disconnect', () => {
  for (const subscriber of subscribers) subscriber.socket.terminate();
  process.exit(0);
});
