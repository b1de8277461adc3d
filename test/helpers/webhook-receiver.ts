/**
 * A webhook receiver on a loopback port for the webhook suites: records every request (raw body,
 * headers) and answers as the test says — by default 204; `respond` can fail, delay, hang, answer
 * 410 or 429, or destroy the socket, and may answer later (a promise: the receiver's own work, during
 * which the request is in flight). Awaiting a request is by event, never by time.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import { deferred } from './wait-for.ts';

export interface ReceivedWebhook {
  readonly body: string;
  readonly headers: IncomingHttpHeaders;
  /** The body parsed (Tributary sends JSON). */
  readonly json: { readonly id: string; readonly type: string; readonly topic: string; readonly tenant: string | null; readonly entity: string | null; readonly data: Record<string, unknown> };
  readonly receivedAt: number;
}

/** What to do with a request: a status (and headers), or `hang` (never answer), or `drop` (destroy the socket). */
export type Reply = number | { readonly status: number; readonly headers?: Record<string, string> } | 'hang' | 'drop';

export interface WebhookReceiver {
  readonly url: string;
  readonly received: readonly ReceivedWebhook[];
  /** Decides each reply from the request and how many came before it; answered when a promise settles. @default () => 204 */
  respond: (request: ReceivedWebhook, index: number) => Reply | Promise<Reply>;
  /** Resolves once `count` requests in all have arrived. */
  waitForCount(count: number): Promise<readonly ReceivedWebhook[]>;
  /** Connections open now: once a sender's are all closed, everything it sent has been read (and recorded). */
  openConnections(): Promise<number>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(path = '/hook'): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const hanging = new Set<ServerResponse>();
  let url = '';
  const receiver: WebhookReceiver = {
    get url() {
      return url;
    },
    received,
    respond: () => 204,
    async waitForCount(count) {
      if (received.length < count) {
        const arrived = deferred<void>();
        waiters.push({ count, resolve: () => arrived.resolve() });
        await arrived.promise;
      }
      return received;
    },
    openConnections: () => new Promise<number>((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
    close: async () => {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: ReceivedWebhook = { body, headers: request.headers, json: JSON.parse(body) as ReceivedWebhook['json'], receivedAt: Date.now() };
      const index = received.length;
      received.push(entry);
      for (const waiter of [...waiters]) {
        if (received.length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
      const answer = (reply: Reply) => {
        if (reply === 'hang') {
          hanging.add(response);
          return;
        }
        if (reply === 'drop') {
          request.socket.destroy();
          return;
        }
        const { status, headers = {} } = typeof reply === 'number' ? { status: reply } : reply;
        response.writeHead(status, headers).end();
      };
      const reply = receiver.respond(entry, index);
      if (reply instanceof Promise) void reply.then(answer, () => answer(500));
      else answer(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  url = `http://127.0.0.1:${port}${path}`;
  onTestFinished(() => receiver.close());
  return receiver;
}
