/**
 * The graphql-ws connection over a real HTTP server and real sockets, with the operation
 * executor and the dispatcher replaced by scripted ones (our own seams, not infrastructure), to
 * reach what a full server only reaches by accident: both frame write paths and the error paths
 * of a subscription that fails inside the server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTokenVerifier } from '../../src/auth/token-verifier.ts';
import { ErrorCode, InternalError, TributaryError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { Dispatcher, DispatchRequest } from '../../src/pipeline/dispatch/dispatcher.ts';
import { dispatchTicket } from '../../src/pipeline/dispatch/subscription-contract.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import type { OperationExecutor, OperationOutcome } from '../../src/server/ws/executor.ts';
import { createGraphQLWebSocketServer } from '../../src/server/ws/websocket-server.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type ReceivedMessage } from '../helpers/ws-client.ts';

const SECRET = 'relation "secret_internal_table" does not exist';

interface Scripted {
  readonly execute: OperationExecutor;
  readonly dispatcher?: Partial<Dispatcher>;
  readonly rawFrames?: boolean;
}

/** A WebSocket endpoint on a real HTTP server of 127.0.0.1; returns its URL. */
async function startEndpoint(scripted: Scripted, logs = captureLogs()): Promise<string> {
  const webSocket = createGraphQLWebSocketServer({
    verifier: createTokenVerifier({ auth: { mode: 'development' } }),
    execute: scripted.execute,
    dispatcher: {
      subscribe: () => Promise.reject(new Error('not scripted')),
      stats: () => ({ streams: 0, cohorts: 0, subscribers: 0, joining: 0 }),
      close: () => Promise.resolve(),
      ...scripted.dispatcher,
    },
    limits: { wsMaxPayloadBytes: 1024 * 1024, connectionInitTimeoutMs: 3000, maxConnections: 100, maxConnectionsPerSubject: 100, maxSubscriptionsPerConnection: 10, maxSubscriptionBytesPerConnection: 4 * 1024 * 1024, tokenExpiryGraceMs: 0, tokenExpiryNoticeMs: 0 },
    logger: createLogger({ level: 'debug', destination: logs }),
    keepAliveMs: 0,
    ...(scripted.rawFrames !== undefined && { rawFrames: scripted.rawFrames }),
  });
  const server: Server = createServer((_request, response) => response.writeHead(404).end());
  server.on('upgrade', (request, socket, head: Buffer) => webSocket.handleUpgrade(request, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    await webSocket.close(1001, 'test over', 1000);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

/** An executor that hands every subscription to the dispatcher, rendering nothing itself. */
const dispatchEverything: OperationExecutor = () =>
  Promise.resolve<OperationOutcome>({
    kind: 'dispatch',
    field: 'events',
    ticket: dispatchTicket({ stream: streamOf({ app: 'a', env: 'e', tenant: 'default' }, 't'), filter: undefined, after: undefined, denied: false, readableBy: () => true }),
    cohort: { key: 'k', render: () => '{}' },
  });

const subscribe = { query: 'subscription { events(topic: "t") { id } }' };

describe('dispatched frames leave intact on both write paths', () => {
  // Sizes on each side of the frame header's 7-, 16- and 64-bit length forms, with multi-byte text.
  const payloads = [10, 100, 1000, 65_600, 200_000].map((size) => JSON.stringify({ data: { text: 'é'.repeat(size / 2) } }));

  it.each([
    ['straight to the TCP socket (rawFrames: true)', true],
    ["through ws's send when the raw socket is not used (rawFrames: false)", false],
  ])('delivers every next frame %s', async (_name, rawFrames) => {
    const url = await startEndpoint({
      execute: dispatchEverything,
      rawFrames,
      dispatcher: {
        subscribe(request: DispatchRequest) {
          // All in one tick, as a fan-out would: the frames are corked and leave together.
          for (const json of payloads) request.sink.next({ json });
          return Promise.resolve({ dispose: () => undefined });
        },
      },
    });
    const client = await openAcknowledgedSocket(url);
    client.send({ id: 'op-é', type: 'subscribe', payload: subscribe });
    const received: ReceivedMessage[] = [];
    for (const _ of payloads) received.push(await client.nextMessage());
    expect(received).toEqual(payloads.map((json) => ({ id: 'op-é', type: 'next', payload: JSON.parse(json) as unknown })));
    // The socket is still in step: a ping after the frames is answered.
    client.send({ type: 'ping' });
    expect(await client.nextMessage()).toEqual({ type: 'pong' });
  });
});

describe('a subscription that fails inside the server', () => {
  const masked = { message: 'Unexpected error.', extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };

  async function failedWith(scripted: Scripted): Promise<{ message: ReceivedMessage; logged: string }> {
    const logs = captureLogs();
    const url = await startEndpoint(scripted, logs);
    const client = await openAcknowledgedSocket(url);
    client.send({ id: '1', type: 'subscribe', payload: subscribe });
    const message = await client.nextMessage();
    return { message, logged: JSON.stringify(logs.lines.filter((line) => line.level === 50)) };
  }

  it('masks a dispatched subscription that the dispatcher fails with an internal error, and logs it', async () => {
    const { message, logged } = await failedWith({
      execute: dispatchEverything,
      dispatcher: {
        subscribe(request: DispatchRequest) {
          request.sink.fail(new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, SECRET));
          return Promise.resolve({ dispose: () => undefined });
        },
      },
    });
    expect(message).toEqual({ id: '1', type: 'error', payload: [masked] });
    expect(logged).toContain('secret_internal_table');
  });

  it('masks an internal error thrown while the dispatcher subscribes', async () => {
    const { message, logged } = await failedWith({
      execute: dispatchEverything,
      dispatcher: { subscribe: () => Promise.reject(new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, SECRET)) },
    });
    expect(message).toEqual({ id: '1', type: 'error', payload: [masked] });
    expect(logged).toContain('secret_internal_table');
  });

  it('masks an InternalError from a per-subscriber source and logs its fault', async () => {
    const failing: AsyncIterableIterator<never> = {
      next: () => Promise.reject(new InternalError('TEST_FAULT', SECRET)),
      return: () => Promise.resolve({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => failing,
    };
    const { message, logged } = await failedWith({ execute: () => Promise.resolve({ kind: 'stream', field: 'channel', results: failing, readableBy: () => true }) });
    expect(message).toEqual({ id: '1', type: 'error', payload: [masked] });
    expect(logged).toContain('secret_internal_table');
    expect(logged).toContain('TEST_FAULT');
  });

  it('still shows a client-facing error as it is', async () => {
    const { message } = await failedWith({
      execute: dispatchEverything,
      dispatcher: { subscribe: () => Promise.reject(new TributaryError(ErrorCode.UNAVAILABLE, 'Live delivery is unavailable right now')) },
    });
    expect(message).toEqual({
      id: '1',
      type: 'error',
      payload: [{ message: 'Live delivery is unavailable right now', extensions: { code: ErrorCode.UNAVAILABLE } }],
    });
  });
});
