/**
 * A fault inside the server while it verifies `connection_init` (a bug in the verifier, an
 * identity provider's answer it did not expect) is an internal error, not a refused token: the
 * socket closes with 4500 "Internal server error" — what graphql-ws's own server sends when its
 * `onConnect` throws — which `@tributary/client` retries, where 4403 would tell it the token is
 * bad and stop it. The fault is logged at error with its cause; the client learns nothing of it.
 * Real sockets on a real HTTP server; the verifier is scripted (our own seam).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeDisposition } from '../../packages/client/src/connection-state.ts';
import type { TokenVerifier } from '../../src/auth/token-verifier.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createGraphQLWebSocketServer } from '../../src/server/ws/websocket-server.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { openSocket } from '../helpers/ws-client.ts';

const FAULT_DETAIL = "Cannot read properties of undefined (reading 'kid')";

/** A WebSocket endpoint whose verifier fails with `error`; returns its URL. */
async function endpointWhoseVerifierThrows(error: Error, logs: ReturnType<typeof captureLogs>): Promise<string> {
  const verifier: TokenVerifier = { mode: 'jwt', clockToleranceMs: 5000, verify: () => Promise.reject(error) };
  const webSocket = createGraphQLWebSocketServer({
    verifier,
    execute: () => Promise.reject(new Error('no operation runs before connection_ack')),
    dispatcher: {
      subscribe: () => Promise.reject(new Error('not scripted')),
      stats: () => ({ streams: 0, cohorts: 0, subscribers: 0, joining: 0 }),
      close: () => Promise.resolve(),
    },
    limits: { wsMaxPayloadBytes: 1024 * 1024, connectionInitTimeoutMs: 3000, maxConnections: 100, maxConnectionsPerSubject: 100, maxSubscriptionsPerConnection: 10, maxSubscriptionBytesPerConnection: 4 * 1024 * 1024, tokenExpiryGraceMs: 0, tokenExpiryNoticeMs: 0 },
    logger: createLogger({ level: 'debug', destination: logs }),
    keepAliveMs: 0,
  });
  const server = createServer((_request, response) => response.writeHead(404).end());
  server.on('upgrade', (request, socket, head: Buffer) => webSocket.handleUpgrade(request, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    await webSocket.close(1001, 'test over', 1000);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

describe('a fault while verifying connection_init', () => {
  it.each([
    ['a TypeError inside the verifier', new TypeError(FAULT_DETAIL)],
    ['an INTERNAL_SERVER_ERROR TributaryError', new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, FAULT_DETAIL)],
  ])('closes with 4500 "Internal server error" (retried by the SDK), not 4403, for %s, and logs it at error', async (_name, error) => {
    const logs = captureLogs();
    const client = await openSocket(await endpointWhoseVerifierThrows(error, logs));
    client.send({ type: 'connection_init', payload: { authorization: 'Bearer any' } });

    const closed = await client.closed();
    expect(closed).toEqual({ code: 4500, reason: 'Internal server error' });
    expect(closeDisposition(closed.code)).toBe('retry');
    const logged = logs.lines.filter((line) => line.level === 50 && line.msg === 'token verification failed unexpectedly');
    expect(logged).toHaveLength(1);
    expect(logged[0]?.err?.message).toBe(FAULT_DETAIL);
  });

  it('still closes a refused token with 4403 and its reason, logged below error', async () => {
    const logs = captureLogs();
    const client = await openSocket(await endpointWhoseVerifierThrows(new TributaryError(ErrorCode.UNAUTHENTICATED, 'Invalid token'), logs));
    client.send({ type: 'connection_init', payload: { authorization: 'Bearer bad' } });

    expect(await client.closed()).toEqual({ code: 4403, reason: 'Forbidden: Invalid token' });
    expect(logs.lines.filter((line) => line.level >= 50)).toEqual([]);
  });
});
