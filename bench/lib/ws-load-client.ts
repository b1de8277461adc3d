/**
 * The one load client every peer is measured with in `roundtrip`: raw graphql-transport-ws
 * frames over `ws` (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), no client
 * library in the way, the same code path for every server. Deliberately thin: the work per
 * message on this side is a `JSON.parse` and a map lookup, so differences between runs are the
 * server's.
 */
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, type SubscribePayload } from 'graphql-ws';
import WebSocket from 'ws';
import { openInBatches } from './open-in-batches.ts';

/** Time to wait for `connection_ack` after opening, in ms. */
const ACK_TIMEOUT_MS = 10_000;

/** A `next` payload as the server sent it. */
export interface ResultPayload {
  readonly data?: unknown;
  readonly errors?: readonly { readonly message: string }[];
}

interface IncomingMessage {
  readonly type: string;
  readonly id?: string;
  readonly payload?: unknown;
}

/** One operation until its `complete` or `error`. */
interface Pending {
  result: ResultPayload | undefined;
  resolve(result: ResultPayload): void;
  reject(error: Error): void;
}

/** One acknowledged graphql-transport-ws socket; `close()` fails the operations still open. */
export interface LoadSocket {
  /** A query or mutation sent as `subscribe`: resolves with its one result once `complete` arrives. */
  execute(payload: SubscribePayload): Promise<ResultPayload>;
  /** Closes with 1000 and waits for the close handshake (at most 2 s, then terminates). */
  close(): Promise<void>;
}

/** ws's default binaryType ('nodebuffer') hands every message over as one Buffer. */
function parse(data: WebSocket.RawData): IncomingMessage {
  return JSON.parse((data as Buffer).toString('utf8')) as IncomingMessage;
}

/** Opens a socket, sends `connection_init` and resolves on `connection_ack`. */
async function openLoadSocket(url: string): Promise<LoadSocket> {
  const socket = new WebSocket(url, GRAPHQL_TRANSPORT_WS_PROTOCOL, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${url}: no connection_ack within ${ACK_TIMEOUT_MS} ms`)), ACK_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.terminate();
      reject(error);
    };
    socket.once('error', fail);
    socket.once('close', (code, reason) => fail(new Error(`${url}: closed before connection_ack (${code} ${reason.toString()})`)));
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    socket.once('message', (data) => {
      const message = parse(data);
      if (message.type !== 'connection_ack') return fail(new Error(`${url}: expected connection_ack, got ${message.type}`));
      clearTimeout(timer);
      socket.removeAllListeners();
      resolve();
    });
  });

  const operations = new Map<string, Pending>();
  let nextId = 0;
  let closed = false;
  socket.on('error', () => undefined); // surfaced as 'close', which fails the open operations
  socket.on('message', (data) => {
    const message = parse(data);
    const pending = operations.get(message.id ?? '');
    switch (message.type) {
      case 'next':
        if (pending) pending.result = message.payload as ResultPayload;
        return;
      case 'complete':
        operations.delete(message.id ?? '');
        if (pending?.result) pending.resolve(pending.result);
        else pending?.reject(new Error('completed without a result'));
        return;
      case 'error':
        operations.delete(message.id ?? '');
        pending?.reject(new Error(`operation error: ${JSON.stringify(message.payload)}`));
        return;
      case 'ping':
        socket.send('{"type":"pong"}');
        return;
      default:
        return;
    }
  });
  socket.on('close', (code, reason) => {
    closed = true;
    const error = new Error(`socket to ${url} closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`);
    for (const pending of operations.values()) pending.reject(error);
    operations.clear();
  });

  return {
    execute(payload) {
      if (closed) return Promise.reject(new Error('socket is closed'));
      return new Promise<ResultPayload>((resolve, reject) => {
        const id = String(nextId++);
        operations.set(id, { result: undefined, resolve, reject });
        socket.send(JSON.stringify({ id, type: 'subscribe', payload }));
      });
    },
    async close() {
      if (socket.readyState === WebSocket.CLOSED) return;
      const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const timer = setTimeout(() => socket.terminate(), 2000);
      socket.close(1000, 'done');
      await done;
      clearTimeout(timer);
    },
  };
}

/** Opens `count` sockets, 50 handshakes at a time; on failure closes those opened. */
export async function openLoadSockets(url: string, count: number): Promise<LoadSocket[]> {
  const sockets: LoadSocket[] = [];
  try {
    await openInBatches(count, 50, () => openLoadSocket(url), (socket) => sockets.push(socket));
    return sockets;
  } catch (error) {
    await closeLoadSockets(sockets);
    throw error;
  }
}

export async function closeLoadSockets(sockets: readonly LoadSocket[]): Promise<void> {
  await Promise.all(sockets.map((socket) => socket.close()));
}
