/**
 * A laptop waking: its socket died without a word (1006, or a pong timeout) and its token expired
 * in its sleep, so the server never said 4419. The auth library may still hand out the cached
 * token at the first `getToken`; the server refuses it (4403). The client retries — a few times,
 * with backoff, asking `getToken` again each time — instead of staying `unauthorized` for good;
 * a token not expired by the device's clock, or one handed out again and again, is still a refusal.
 * Against a `ws` server that refuses the token it is told to.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type ConnectionState } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { graphqlWsServer, listenUntilTestEnds } from '../helpers/scripted-server.ts';

/** An unsigned JWT-shaped token of subject `u` (the client reads its claims, never its signature). */
function token(claims: Record<string, unknown>): string {
  return `h.${Buffer.from(JSON.stringify({ sub: 'u', ...claims })).toString('base64url')}.s`;
}

const now = () => Math.floor(Date.now() / 1000);

/**
 * Acknowledges every socket but those whose token `refuses` says to close with 4403 (never the
 * first). `drop()` ends the first socket without a close frame: the client sees 1006.
 */
async function startServer(refuses: (token: string | undefined, index: number) => boolean) {
  const server = graphqlWsServer();
  const tokens: (string | undefined)[] = [];
  const sockets: WebSocket[] = [];
  server.on('connection', (socket) => {
    sockets.push(socket);
    socket.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as { type: string; payload?: { authorization?: string } };
      if (message.type !== 'connection_init') return;
      const index = tokens.push(message.payload?.authorization?.replace(/^Bearer /, '')) - 1;
      if (index > 0 && refuses(tokens[index], index)) return socket.close(4403, 'Forbidden');
      socket.send(JSON.stringify({ type: 'connection_ack' }));
    });
  });
  return { url: await listenUntilTestEnds(server), tokens, drop: () => sockets[0]!.terminate() };
}

/** A client whose first socket is acknowledged, then lost without a close frame. */
async function connectThenLose(server: Awaited<ReturnType<typeof startServer>>, getToken: () => string) {
  const states: ConnectionState[] = [];
  const client = createClient({ url: server.url, webSocketImpl: WebSocket, getToken, backoff: { initialMs: 20, maxMs: 40 }, onError: () => {} });
  client.onStateChange((state) => void states.push(state));
  onTestFinished(() => client.close());
  await waitFor(() => client.state === 'connected', { message: 'the first socket acknowledged' });
  server.drop();
  return { client, states };
}

describe('a 4403 after a socket lost otherwise', () => {
  it('retries a token expired by the device clock, asking getToken again, and connects once the library has a new one', async () => {
    const before = token({ exp: now() + 3600 });
    const expired = token({ exp: now() - 60 });
    const fresh = token({ exp: now() + 7200 });
    // The library hands out its expired token twice after the wake before it has refreshed it.
    let handedOut = 0;
    const server = await startServer((sent) => sent === expired);
    const { client, states } = await connectThenLose(server, () => {
      if (server.tokens.length === 0) return before;
      handedOut += 1;
      return handedOut <= 2 ? expired : fresh;
    });
    await waitFor(() => client.state === 'unauthorized' || server.tokens.at(-1) === fresh && client.state === 'connected', { message: 'connected or refused' });
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
    expect(server.tokens).toEqual([before, expired, expired, fresh]);
  });

  it('stays unauthorized after a few retries when getToken keeps handing out the expired token', async () => {
    const expired = token({ exp: now() - 60 });
    const server = await startServer((sent) => sent === expired);
    const { client, states } = await connectThenLose(server, () => (server.tokens.length === 0 ? token({ exp: now() + 3600 }) : expired));
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    expect(states).toEqual(['connected', 'reconnecting', 'unauthorized']);
    // The first refusal and five retries of it.
    expect(server.tokens.slice(1)).toEqual(Array.from({ length: 6 }, () => expired));
  });

  it('is unauthorized at the first 4403 for a token the device’s clock says is still valid (a refused login, not a stale one)', async () => {
    const valid = token({ exp: now() + 3600 });
    const server = await startServer((_sent, index) => index > 0);
    const { client, states } = await connectThenLose(server, () => valid);
    await waitFor(() => client.state === 'unauthorized', { message: 'unauthorized' });
    expect(states).toEqual(['connected', 'reconnecting', 'unauthorized']);
    expect(server.tokens).toHaveLength(2);
  });
});
