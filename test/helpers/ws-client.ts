/**
 * A raw graphql-transport-ws client over `ws`, for driving the protocol frame by frame
 * (the way graphql-ws's own server tests do). Every message and the close are recorded;
 * waiting is on events, never on time.
 */
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import WebSocket from 'ws';
import { onTestFinished } from 'vitest';

export interface ReceivedMessage {
  readonly type: string;
  readonly id?: string;
  readonly payload?: unknown;
}

export interface CloseEvent {
  readonly code: number;
  readonly reason: string;
}

export interface RawSocket {
  readonly socket: WebSocket;
  /** Sends a JSON message (or a raw string as it is). */
  send(message: object | string): void;
  /** The next message not yet taken; rejects if the socket closes first. */
  nextMessage(): Promise<ReceivedMessage>;
  /** Takes messages until one matches, returning it (the others are skipped). */
  waitForMessage(match: (message: ReceivedMessage) => boolean): Promise<ReceivedMessage>;
  /** Resolves with the close code and reason (immediately if already closed). */
  closed(): Promise<CloseEvent>;
  /** Messages received and not yet taken. */
  readonly pending: readonly ReceivedMessage[];
}

export interface OpenOptions {
  /** Subprotocols to offer. @default ['graphql-transport-ws'] */
  readonly protocols?: readonly string[];
}

/** Opens a socket and resolves once it is open. Closed after the test. */
export async function openSocket(url: string, options: OpenOptions = {}): Promise<RawSocket> {
  const socket = new WebSocket(url, [...(options.protocols ?? [GRAPHQL_TRANSPORT_WS_PROTOCOL])]);
  const queue: ReceivedMessage[] = [];
  let waiter: { resolve: (message: ReceivedMessage) => void; reject: (error: Error) => void } | undefined;
  let closeEvent: CloseEvent | undefined;
  const closeWaiters: ((event: CloseEvent) => void)[] = [];

  socket.on('message', (data) => {
    const message = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8')) as ReceivedMessage;
    if (waiter) {
      const { resolve } = waiter;
      waiter = undefined;
      resolve(message);
    } else {
      queue.push(message);
    }
  });
  socket.on('close', (code, reason) => {
    closeEvent = { code, reason: reason.toString() };
    waiter?.reject(new Error(`socket closed (${code} ${reason.toString()}) while waiting for a message`));
    waiter = undefined;
    for (const resolve of closeWaiters.splice(0)) resolve(closeEvent);
  });
  onTestFinished(() => {
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.terminate();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });

  const nextMessage = (): Promise<ReceivedMessage> => {
    const queued = queue.shift();
    if (queued) return Promise.resolve(queued);
    if (closeEvent) return Promise.reject(new Error(`socket closed (${closeEvent.code} ${closeEvent.reason})`));
    return new Promise((resolve, reject) => (waiter = { resolve, reject }));
  };

  return {
    socket,
    send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    nextMessage,
    async waitForMessage(match) {
      for (;;) {
        const message = await nextMessage();
        if (match(message)) return message;
      }
    },
    closed: () => (closeEvent ? Promise.resolve(closeEvent) : new Promise((resolve) => closeWaiters.push(resolve))),
    get pending() {
      return queue;
    },
  };
}

/** Opens a socket, sends `connection_init` with the token, and waits for `connection_ack`. */
export async function openAcknowledgedSocket(url: string, token?: string): Promise<RawSocket> {
  const client = await openSocket(url);
  client.send({ type: 'connection_init', payload: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const ack = await client.nextMessage();
  if (ack.type !== 'connection_ack') throw new Error(`expected connection_ack, got ${JSON.stringify(ack)}`);
  return client;
}
