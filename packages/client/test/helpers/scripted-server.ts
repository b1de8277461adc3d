/**
 * A small graphql-transport-ws server whose answers a test scripts, for what the real server
 * cannot be made to do on demand (answer RESYNC_REQUIRED forever, close every socket after its
 * acknowledgement…). Real sockets (`ws`) on 127.0.0.1, closed when the test finishes.
 */
import { onTestFinished } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';

export interface Operation {
  readonly id: string;
  readonly query: string;
  readonly variables: Readonly<Record<string, unknown>>;
}

/** How the script answers an operation. */
export interface Reply {
  next(data: unknown): void;
  /** An `error` message: the operation ends with these GraphQL errors. */
  error(code: string, message?: string): void;
  /** An `error` message whose one error carries these extensions (a `code`, and `retryAfterMs`, `reason`…). */
  errorWith(extensions: Readonly<Record<string, unknown>>, message?: string): void;
  complete(): void;
  /**
   * A refusal as the Tributary server sends one (graphql-ws's server for an operation whose
   * execution answered errors: the operation limit, a subject's rate): a result carrying one error
   * with these extensions, then `complete` — in one TCP write, so the client reads both at once.
   */
  refuse(extensions: Readonly<Record<string, unknown>>, message?: string): void;
  /** The operation's socket, to close it. */
  readonly socket: WebSocket;
}

/**
 * A graphql-transport-ws server on a free port of 127.0.0.1, its sockets terminated and the server
 * closed when the test finishes; `on('connection')` is the caller's.
 */
export function graphqlWsServer(): WebSocketServer {
  return new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'graphql-transport-ws' });
}

/** Waits until `server` listens, and closes it (its sockets terminated) when the test finishes; its URL. */
export async function listenUntilTestEnds(server: WebSocketServer): Promise<string> {
  await new Promise((resolve) => server.once('listening', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of server.clients) socket.terminate();
        server.close(() => resolve());
      }),
  );
  return `ws://127.0.0.1:${(server.address() as { port: number }).port}/graphql`;
}

export interface ScriptedServer {
  readonly url: string;
  /** Every socket opened, in order. */
  readonly sockets: readonly WebSocket[];
  /** Every operation received, in order. */
  readonly operations: readonly Operation[];
}

export interface ScriptedServerOptions {
  /** Called once a socket was acknowledged (its `connection_ack` sent). */
  readonly onAcknowledged?: (socket: WebSocket, index: number) => void;
  /** Called at each `connection_init` before the acknowledgement; false: no acknowledgement (the script closes the socket itself). */
  readonly onInit?: (socket: WebSocket, index: number) => boolean;
}

export async function startScriptedServer(onOperation: (operation: Operation, reply: Reply) => void, options: ScriptedServerOptions = {}): Promise<ScriptedServer> {
  const sockets: WebSocket[] = [];
  const operations: Operation[] = [];
  const server = graphqlWsServer();
  server.on('connection', (socket, request) => {
    const index = sockets.push(socket) - 1;
    socket.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as { type: string; id?: string; payload?: { query: string; variables?: Record<string, unknown> } };
      if (message.type === 'connection_init') {
        if (options.onInit?.(socket, index) === false) return;
        socket.send(JSON.stringify({ type: 'connection_ack' }));
        options.onAcknowledged?.(socket, index);
        return;
      }
      if (message.type === 'ping') {
        socket.send(JSON.stringify({ type: 'pong' }));
        return;
      }
      if (message.type !== 'subscribe' || message.id === undefined || !message.payload) return;
      const id = message.id;
      const operation: Operation = { id, query: message.payload.query, variables: message.payload.variables ?? {} };
      operations.push(operation);
      const send = (reply: object) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ id, ...reply }));
      };
      onOperation(operation, {
        next: (data) => send({ type: 'next', payload: { data } }),
        error: (code, text = code) => send({ type: 'error', payload: [{ message: text, extensions: { code } }] }),
        errorWith: (extensions, text = String(extensions['code'])) => send({ type: 'error', payload: [{ message: text, extensions }] }),
        complete: () => send({ type: 'complete' }),
        refuse: (extensions, text = String(extensions['code'])) => {
          // Corked: both frames leave in one write, as they often do from the real server.
          request.socket.cork();
          send({ type: 'next', payload: { errors: [{ message: text, extensions }] } });
          send({ type: 'complete' });
          request.socket.uncork();
        },
        socket,
      });
    });
  });
  return { url: await listenUntilTestEnds(server), sockets, operations };
}

/** A `records` page with no rows, at position `cursor` (what a live model's snapshot and subscribeModel's position read take). */
export function emptyRecords(cursor: string): unknown {
  return { records: { cursor, nodes: [], pending: [], pageInfo: { endCursor: null, hasNextPage: false }, readAt: '2026-01-01T00:00:00.000Z' } };
}
