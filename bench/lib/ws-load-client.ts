/**
 * The one load client every peer is measured with: raw graphql-transport-ws frames over `ws`
 * (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), no client library in the
 * way, the same code path for every server. Deliberately thin: the work per message on this
 * side is a `JSON.parse` and a map lookup, so differences between runs are the server's.
 */
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, type SubscribePayload } from 'graphql-ws';
import WebSocket from 'ws';

export interface LoadSocketOptions {
  /** `ws://127.0.0.1:port/graphql` */
  readonly url: string;
  /** Sent as `connection_init`'s `{ authorization }`; omitted when undefined. */
  readonly authorization?: string;
  /** Time to wait for `connection_ack` after opening, in ms. @default 10000 */
  readonly ackTimeoutMs?: number;
}

/** A `next` payload as the server sent it. */
export interface ResultPayload {
  readonly data?: unknown;
  readonly errors?: readonly { readonly message: string }[];
}

/** Receives one operation's messages. Exactly one of `error` / `complete` ends it. */
export interface OperationSink {
  next(result: ResultPayload): void;
  error(error: Error): void;
  complete(): void;
}

interface IncomingMessage {
  readonly type: string;
  readonly id?: string;
  readonly payload?: unknown;
}

/** One acknowledged graphql-transport-ws socket. Owns its operations; `close()` ends them all. */
export class LoadSocket {
  readonly #socket: WebSocket;
  readonly #url: string;
  readonly #operations = new Map<string, OperationSink>();
  #nextId = 0;
  #closed = false;

  private constructor(socket: WebSocket, url: string) {
    this.#socket = socket;
    this.#url = url;
    socket.on('message', (data) => this.#onMessage(JSON.parse(rawDataToText(data)) as IncomingMessage));
    socket.on('close', (code, reason) => this.#onClose(code, reason.toString()));
  }

  /** Opens a socket, sends `connection_init` and resolves on `connection_ack`. */
  static async open(options: LoadSocketOptions): Promise<LoadSocket> {
    const socket = new WebSocket(options.url, GRAPHQL_TRANSPORT_WS_PROTOCOL, { perMessageDeflate: false });
    const timeoutMs = options.ackTimeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${options.url}: no connection_ack within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on('error', () => undefined);
        socket.terminate();
        reject(error);
      };
      socket.once('error', fail);
      socket.once('close', (code, reason) => fail(new Error(`${options.url}: closed before connection_ack (${code} ${reason.toString()})`)));
      socket.once('open', () => {
        socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: options.authorization } }));
      });
      socket.once('message', (data) => {
        const message = JSON.parse(rawDataToText(data)) as IncomingMessage;
        if (message.type !== 'connection_ack') {
          fail(new Error(`${options.url}: expected connection_ack, got ${message.type}`));
          return;
        }
        clearTimeout(timer);
        socket.removeAllListeners();
        resolve();
      });
    });
    socket.on('error', () => undefined); // surfaced as 'close', which fails the open operations
    return new LoadSocket(socket, options.url);
  }

  get activeOperations(): number {
    return this.#operations.size;
  }

  /** Sends `subscribe`; returns the operation id. */
  subscribe(payload: SubscribePayload, sink: OperationSink): string {
    if (this.#closed) throw new Error('socket is closed');
    const id = String(this.#nextId++);
    this.#operations.set(id, sink);
    this.#socket.send(JSON.stringify({ id, type: 'subscribe', payload }));
    return id;
  }

  /** Sends `complete` for an operation the client no longer wants. */
  complete(id: string): void {
    if (!this.#operations.delete(id) || this.#closed) return;
    this.#socket.send(JSON.stringify({ id, type: 'complete' }));
  }

  /** A query or mutation: resolves with its one result once `complete` arrives. */
  execute(payload: SubscribePayload): Promise<ResultPayload> {
    return new Promise<ResultPayload>((resolve, reject) => {
      let result: ResultPayload | undefined;
      this.subscribe(payload, {
        next: (value) => (result = value),
        error: reject,
        complete: () => (result ? resolve(result) : reject(new Error('completed without a result'))),
      });
    });
  }

  /** Closes with 1000 and waits for the close handshake (at most `timeoutMs`, then terminates). */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.#socket.once('close', () => resolve()));
    const timer = setTimeout(() => this.#socket.terminate(), timeoutMs);
    this.#socket.close(1000, 'done');
    await closed;
    clearTimeout(timer);
  }

  #onMessage(message: IncomingMessage): void {
    switch (message.type) {
      case 'next':
        this.#operations.get(message.id ?? '')?.next(message.payload as ResultPayload);
        return;
      case 'complete':
      case 'error': {
        const sink = this.#operations.get(message.id ?? '');
        if (!sink) return;
        this.#operations.delete(message.id ?? '');
        if (message.type === 'complete') sink.complete();
        else sink.error(new Error(`operation error: ${JSON.stringify(message.payload)}`));
        return;
      }
      case 'ping':
        this.#socket.send(JSON.stringify({ type: 'pong' }));
        return;
      default:
        return;
    }
  }

  #onClose(code: number, reason: string): void {
    this.#closed = true;
    const error = new Error(`socket to ${this.#url} closed (${code}${reason ? ` ${reason}` : ''})`);
    for (const sink of this.#operations.values()) sink.error(error);
    this.#operations.clear();
  }
}

/** Opens `count` sockets, at most `parallel` handshakes at a time; on failure closes those opened. */
export async function openLoadSockets(options: LoadSocketOptions, count: number, parallel = 50): Promise<LoadSocket[]> {
  const sockets: LoadSocket[] = [];
  try {
    while (sockets.length < count) {
      const batch = Math.min(parallel, count - sockets.length);
      const opened = await Promise.allSettled(Array.from({ length: batch }, () => LoadSocket.open(options)));
      for (const result of opened) if (result.status === 'fulfilled') sockets.push(result.value);
      const failed = opened.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
    }
    return sockets;
  } catch (error) {
    await closeLoadSockets(sockets);
    throw error;
  }
}

export async function closeLoadSockets(sockets: readonly LoadSocket[]): Promise<void> {
  await Promise.all(sockets.map((socket) => socket.close()));
}

function rawDataToText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
