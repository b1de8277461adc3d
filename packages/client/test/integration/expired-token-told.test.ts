/**
 * An auth library whose refresh failed hands out its cached token after it expired: the server
 * closed the socket for it (4419) and refuses it at every connect (4419). The client retries it
 * with backoff for good (the README: a token refused as just expired is retried, not
 * `unauthorized`) — but not silently: from the second refusal in a row a TokenExpiredError goes to
 * `onError` and into every subscription's error, and all of it clears once getToken has a new
 * token. Against a `ws` server that refuses the tokens it is told to.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, TokenExpiredError, type ConnectionState } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { emptyRecords, graphqlWsServer, listenUntilTestEnds } from '../helpers/scripted-server.ts';

/** An unsigned JWT-shaped token of subject `u` (the client reads its claims, never its signature). */
function token(claims: Record<string, unknown>): string {
  return `h.${Buffer.from(JSON.stringify({ sub: 'u', ...claims })).toString('base64url')}.s`;
}

const now = () => Math.floor(Date.now() / 1000);
const EXPIRED_REASON = 'Token expired: reconnect with a new token';

/**
 * Acknowledges the first socket and every later one whose token `accepts`, and closes the others
 * at `connection_init` with 4419, as the server does for an expired token. Answers a live model's
 * snapshot (no rows) and keeps its change stream open.
 */
async function startServer(accepts: (token: string | undefined) => boolean) {
  const server = graphqlWsServer();
  const tokens: (string | undefined)[] = [];
  const sockets: WebSocket[] = [];
  server.on('connection', (socket) => {
    sockets.push(socket);
    socket.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as { type: string; id?: string; payload?: { authorization?: string; query?: string } };
      if (message.type === 'connection_init') {
        const index = tokens.push(message.payload?.authorization?.replace(/^Bearer /, '')) - 1;
        if (index > 0 && !accepts(tokens[index])) return socket.close(4419, EXPIRED_REASON);
        return socket.send(JSON.stringify({ type: 'connection_ack' }));
      }
      if (message.type === 'ping') return socket.send(JSON.stringify({ type: 'pong' }));
      if (message.type === 'subscribe' && message.payload?.query?.includes('records(')) {
        socket.send(JSON.stringify({ id: message.id, type: 'next', payload: { data: emptyRecords('c0') } }));
        socket.send(JSON.stringify({ id: message.id, type: 'complete' }));
      }
    });
  });
  return { url: await listenUntilTestEnds(server), tokens, sockets };
}

describe('getToken keeps returning an expired token', () => {
  it('retries with backoff and says why: onError and the live model’s error get a TokenExpiredError, cleared once a fresh token connects', async () => {
    const exp = now() - 5;
    const expired = token({ exp });
    const fresh = token({ exp: now() + 3600 });
    let current = expired;
    const server = await startServer((sent) => sent === fresh);
    const reported: unknown[] = [];
    const states: ConnectionState[] = [];
    const client = createClient({ url: server.url, webSocketImpl: WebSocket, getToken: () => current, backoff: { initialMs: 20, maxMs: 40 }, onError: (error) => void reported.push(error) });
    onTestFinished(() => client.close());
    client.onStateChange((state) => void states.push(state));
    const model = client.liveModel('contacts');
    await waitFor(() => model.status === 'live', { message: 'live on the first socket' });

    // The token expired without a refresh: the server closes the socket (4419).
    server.sockets[0]!.close(4419, EXPIRED_REASON);
    await waitFor(() => model.error instanceof TokenExpiredError, { message: 'the live model told why it is not served' });
    expect(model.status).toBe('reconnecting');
    // The first report: at the second refusal in a row (the live model shows the latest).
    const error = reported.find((each): each is TokenExpiredError => each instanceof TokenExpiredError)!;
    expect(error.closeCode).toBe(4419);
    expect(error.reason).toBe(EXPIRED_REASON);
    expect(error.refusals).toBe(2);
    expect(error.expiresAt).toBe(exp * 1000);
    expect(error.message).toMatch(/^The token getToken returned is expired \(exp .*\): the server refused it 2 times in a row \(close code 4419: Token expired/);
    expect(error.message).toContain('keeps retrying');
    expect((model.error as TokenExpiredError).refusals).toBeGreaterThanOrEqual(2);

    // Still retried (with backoff, asking getToken each time), never `unauthorized`.
    const attempts = server.tokens.length;
    await waitFor(() => server.tokens.length >= attempts + 2, { message: 'retried further' });
    expect(client.state).toBe('reconnecting');
    expect(server.tokens.slice(1).every((sent) => sent === expired)).toBe(true);

    current = fresh;
    await waitFor(() => client.state === 'connected' && model.status === 'live', { message: 'connected with the fresh token' });
    expect(model.error).toBeNull();
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
  });
});
