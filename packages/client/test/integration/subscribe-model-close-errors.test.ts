/**
 * What `subscribeModel` reports when its connection closes: a SessionEndedError with the close
 * code and the server's reason (never graphql-ws's raw CloseEvent, which has no `message`), and a
 * token the server refuses (4403 "Invalid token") ends the subscription as `createClient` turns
 * `unauthorized` — a token function returning it again would be refused for ever. A close for
 * another reason (4500) is reported and retried. A `ws` server scripted per connection.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { SessionEndedError, subscribeModel } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { graphqlWsServer, listenUntilTestEnds } from '../helpers/scripted-server.ts';

const INVALID = 'Forbidden: Invalid token: signature verification failed';

/**
 * `atInit(index)` closes the connection at `connection_init` with a code and reason, or
 * acknowledges it (undefined); `afterSubscribe(index)` likewise once `changes` is subscribed.
 * Answers the position read (`records`) with a cursor.
 */
async function startServer(atInit: (index: number) => [number, string] | undefined, afterSubscribe: (index: number) => [number, string] | undefined = () => undefined) {
  const server = graphqlWsServer();
  let connections = 0;
  server.on('connection', (socket) => {
    const index = (connections += 1) - 1;
    socket.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as { type: string; id?: string; payload?: { query?: string } };
      if (message.type === 'connection_init') {
        const close = atInit(index);
        return close ? socket.close(...close) : socket.send(JSON.stringify({ type: 'connection_ack' }));
      }
      if (message.type !== 'subscribe') return;
      if (message.payload?.query?.includes('records(')) {
        socket.send(JSON.stringify({ id: message.id, type: 'next', payload: { data: { records: { cursor: 'c0' } } } }));
        return socket.send(JSON.stringify({ id: message.id, type: 'complete' }));
      }
      const close = afterSubscribe(index);
      if (close) socket.close(...close);
    });
  });
  return { url: await listenUntilTestEnds(server), connections: () => connections };
}

function subscribe(url: string, errors: unknown[]) {
  const subscription = subscribeModel({ url, token: 'h.e30.s', model: 'contacts', webSocketImpl: WebSocket, maxRetryDelayMs: 20, onChange: () => {}, onError: (error) => void errors.push(error) });
  onTestFinished(async () => {
    subscription.close();
    await subscription.closed;
  });
  return subscription;
}

describe('subscribeModel: a closed connection', () => {
  it('ends on a token the server refuses (4403), reporting one SessionEndedError with the server’s reason', async () => {
    const server = await startServer(() => [4403, INVALID]);
    const errors: unknown[] = [];
    const subscription = subscribe(server.url, errors);
    // Retried, a second connection would come within a pause of at most 20 ms.
    const outcome = await Promise.race([subscription.closed.then(() => 'closed'), waitFor(() => server.connections() > 1, { timeoutMs: 10_000 }).then(() => 'retried')]);
    expect(outcome).toBe('closed');
    expect(errors).toHaveLength(1);
    const error = errors[0] as SessionEndedError;
    expect(error).toBeInstanceOf(SessionEndedError);
    expect(error.closeCode).toBe(4403);
    expect(error.reason).toBe(INVALID);
    expect(error.message).toBe(`The connection ended (close code 4403: ${INVALID})`);
  });

  it('reports a close for another reason (4500) as a SessionEndedError, and subscribes again', async () => {
    const server = await startServer(() => undefined, (index) => (index === 0 ? [4500, 'Internal server error'] : undefined));
    const errors: unknown[] = [];
    subscribe(server.url, errors);
    await waitFor(() => server.connections() === 2, { timeoutMs: 10_000, message: 'connected again' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SessionEndedError);
    expect((errors[0] as SessionEndedError).closeCode).toBe(4500);
    expect((errors[0] as SessionEndedError).message).toBe('The connection ended (close code 4500: Internal server error)');
  });
});
