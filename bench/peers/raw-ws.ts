/**
 * The floor of the fan-out workload: a plain `ws` WebSocketServer with no GraphQL at all. It
 * speaks just enough graphql-transport-ws for the load client (`connection_init` →
 * `connection_ack`, `subscribe` is remembered, `complete` forgets, `ping` → `pong`) and takes the
 * same `publish` mutation body over HTTP POST, reading only `variables.topic` and
 * `variables.payload` from it. Each event becomes one `next` frame per subscription id (the
 * bytes of Tributary's frame for `events { id payload cursor }`), built once and written to
 * every socket of that id with the writes of one tick corked together. No validation, no
 * execution, no log, no bounds: no GraphQL server can do less per delivered message.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createEventIdentities } from './event-ids.ts';
import { closeListener, listenOnLoopback } from './http-listener.ts';
import type { RunningPeer } from './peer.ts';

const PATH = '/graphql';
const PROTOCOL = 'graphql-transport-ws';
/** Larger publish bodies are refused (413). */
const MAX_BODY_BYTES = 1024 * 1024;

interface ClientMessage {
  readonly type?: unknown;
  readonly id?: unknown;
  readonly payload?: { readonly variables?: { readonly topic?: unknown } | null } | null;
}

interface PublishBody {
  readonly variables?: { readonly topic?: unknown; readonly payload?: unknown } | null;
}

/** topic → subscription id → sockets: one frame per (topic, id) and event. */
type Subscriptions = Map<string, Map<string, Set<WebSocket>>>;

export async function startRawWsPeer(): Promise<RunningPeer> {
  const subscriptions: Subscriptions = new Map();
  const identities = createEventIdentities();
  const batcher = createCorkBatcher();

  const fanOut = (topic: string, payloadJson: string): string => {
    const { id, cursor } = identities.next();
    const byId = subscriptions.get(topic);
    if (byId) {
      const event = `{"data":{"events":{"id":${JSON.stringify(id)},"payload":${payloadJson},"cursor":${JSON.stringify(cursor)}}}}`;
      for (const [subscriptionId, sockets] of byId) {
        const frame = Buffer.from(`{"id":${JSON.stringify(subscriptionId)},"type":"next","payload":${event}}`);
        for (const socket of sockets) {
          batcher.cork(socket);
          socket.send(frame, { binary: false });
        }
      }
    }
    return id;
  };

  const server = createServer((request, response) => handlePublish(request, response, fanOut));
  const wsServer = new WebSocketServer({
    server,
    path: PATH,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  });
  wsServer.on('connection', (socket) => serveSocket(socket, subscriptions));

  const port = await listenOnLoopback(server);

  let disposed: Promise<void> | undefined;
  return {
    port,
    path: PATH,
    dispose: () =>
      (disposed ??= (async () => {
        for (const socket of wsServer.clients) socket.terminate();
        await new Promise<void>((resolve) => wsServer.close(() => resolve()));
        await closeListener(server);
      })()),
  };
}

function serveSocket(socket: WebSocket, subscriptions: Subscriptions): void {
  const mine = new Map<string, Set<WebSocket>>();
  socket.on('error', () => undefined); // the client went away: 'close' follows
  socket.on('message', (data) => {
    let message: ClientMessage;
    try {
      // ws's default binaryType ('nodebuffer') hands every message over as one Buffer.
      message = JSON.parse((data as Buffer).toString('utf8')) as ClientMessage;
    } catch {
      socket.close(4400, 'Invalid message received');
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    switch (message.type) {
      case 'connection_init':
        socket.send('{"type":"connection_ack"}');
        return;
      case 'ping':
        socket.send('{"type":"pong"}');
        return;
      case 'subscribe': {
        const topic = message.payload?.variables?.topic;
        if (id === undefined || typeof topic !== 'string') {
          socket.close(4400, 'subscribe needs an id and variables.topic');
          return;
        }
        let byId = subscriptions.get(topic);
        if (!byId) subscriptions.set(topic, (byId = new Map<string, Set<WebSocket>>()));
        let sockets = byId.get(id);
        if (!sockets) byId.set(id, (sockets = new Set()));
        sockets.add(socket);
        mine.set(id, sockets);
        return;
      }
      case 'complete':
        if (id === undefined) return;
        mine.get(id)?.delete(socket);
        mine.delete(id);
        return;
      default:
        return;
    }
  });
  socket.once('close', () => {
    for (const sockets of mine.values()) sockets.delete(socket);
    mine.clear();
  });
}

function handlePublish(request: IncomingMessage, response: ServerResponse, fanOut: (topic: string, payloadJson: string) => string): void {
  if (request.method !== 'POST') {
    response.writeHead(405).end();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  request.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  request.on('end', () => {
    if (size > MAX_BODY_BYTES) {
      response.writeHead(413).end();
      return;
    }
    let body: PublishBody;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as PublishBody;
    } catch {
      response.writeHead(400).end();
      return;
    }
    const topic = body.variables?.topic;
    const payload = body.variables?.payload;
    if (typeof topic !== 'string' || typeof payload !== 'object' || payload === null) {
      response.writeHead(400).end();
      return;
    }
    const id = fanOut(topic, JSON.stringify(payload));
    response.writeHead(200, { 'content-type': 'application/json' }).end(`{"data":{"publish":{"id":${JSON.stringify(id)}}}}`);
  });
}

/**
 * Write batching as `src/server/ws/write-batcher.ts` does it: the first frame for a socket in a
 * tick corks its TCP socket; one `setImmediate` uncorks them all, so a tick's frames for one
 * socket leave in one write.
 */
function createCorkBatcher(): { cork(socket: WebSocket): void } {
  const corked = new Set<Socket>();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    for (const raw of corked) raw.uncork();
    corked.clear();
  };
  return {
    cork(socket) {
      // ws keeps its net.Socket private; without it, frames are simply written one by one.
      const raw = (socket as unknown as { _socket?: Socket })._socket;
      if (!raw || corked.has(raw)) return;
      raw.cork();
      corked.add(raw);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}
