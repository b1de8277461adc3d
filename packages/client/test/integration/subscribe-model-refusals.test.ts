/**
 * Which server errors end `subscribeModel` and which it rides out. A long-running service
 * subscription stops only on a refusal the same request would meet again (BAD_USER_INPUT,
 * FORBIDDEN…); the server's masked unexpected error (INTERNAL_SERVER_ERROR), MISCONFIGURED, an
 * unknown code or none are reported and retried. The real server cannot be made to answer
 * INTERNAL_SERVER_ERROR on demand, so a small graphql-transport-ws server answers here: its first
 * `records` (position read) or first `changes` fails with the code under test, the rest is served.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocketServer } from 'ws';
import { subscribeModel, TributaryRequestError } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';

type FailingOperation = 'records' | 'changes';

interface ScriptedServer {
  readonly url: string;
  /** `subscribe` messages received, by operation. */
  readonly received: { records: number; changes: number };
}

/**
 * Answers `records` with a position and keeps `changes` open, quiet — except the first `failing`
 * operation, answered with one GraphQL error of `code` (as an `error` message for `records`, as a
 * `next` carrying errors then `complete` for `changes`: the two ways the server refuses).
 */
async function startScriptedServer(failing: FailingOperation, code: string | undefined): Promise<ScriptedServer> {
  const received = { records: 0, changes: 0 };
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'graphql-transport-ws' });
  server.on('connection', (socket) => {
    socket.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as { type: string; id?: string; payload?: { query: string } };
      if (message.type === 'connection_init') socket.send(JSON.stringify({ type: 'connection_ack' }));
      if (message.type !== 'subscribe') return;
      const operation: FailingOperation = message.payload!.query.includes('records') ? 'records' : 'changes';
      received[operation] += 1;
      const errors = [{ message: 'Refused', ...(code !== undefined && { extensions: { code } }) }];
      if (operation === failing && received[operation] === 1) {
        if (operation === 'records') socket.send(JSON.stringify({ id: message.id, type: 'error', payload: errors }));
        else {
          socket.send(JSON.stringify({ id: message.id, type: 'next', payload: { errors } }));
          socket.send(JSON.stringify({ id: message.id, type: 'complete' }));
        }
        return;
      }
      if (operation === 'records') {
        socket.send(JSON.stringify({ id: message.id, type: 'next', payload: { data: { records: { cursor: 'c0' } } } }));
        socket.send(JSON.stringify({ id: message.id, type: 'complete' }));
      }
    });
  });
  await new Promise((resolve) => server.once('listening', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  );
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/graphql`, received };
}

function subscribe(url: string, errors: unknown[]) {
  const subscription = subscribeModel({
    url,
    token: 'token',
    model: 'contacts',
    maxRetryDelayMs: 20,
    onChange: () => {},
    onError: (error) => void errors.push(error),
  });
  let closed = false;
  void subscription.closed.then(() => (closed = true));
  onTestFinished(async () => {
    subscription.close();
    await subscription.closed;
  });
  return { subscription, isClosed: () => closed };
}

describe('subscribeModel: errors it retries', () => {
  const cases: [string | undefined, FailingOperation][] = [
    ['INTERNAL_SERVER_ERROR', 'records'],
    ['INTERNAL_SERVER_ERROR', 'changes'],
    ['MISCONFIGURED', 'records'],
    ['UNAUTHENTICATED', 'changes'],
    ['SOMETHING_NEW', 'changes'],
    [undefined, 'records'],
  ];
  it.each(cases)('%s on the first %s: reported once, then subscribed again', async (code, failing) => {
    const server = await startScriptedServer(failing, code);
    const errors: unknown[] = [];
    const { isClosed } = subscribe(server.url, errors);
    // Subscribed again after the refusal: `changes` is open (a second time when `changes` failed).
    await waitFor(() => server.received.changes === (failing === 'changes' ? 2 : 1), { timeoutMs: 10_000, message: 'subscribed again' });
    expect(isClosed()).toBe(false);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(TributaryRequestError);
    expect((errors[0] as TributaryRequestError).code).toBe(code);
  });
});

describe('subscribeModel: refusals it stops on', () => {
  const codes = ['BAD_USER_INPUT', 'FORBIDDEN', 'NOT_FOUND', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'QUERY_TOO_COMPLEX'];
  it.each(codes)('%s: reported once, and `closed` settles without another subscription', async (code) => {
    const server = await startScriptedServer('changes', code);
    const errors: unknown[] = [];
    const { subscription } = subscribe(server.url, errors);
    // Retried, `changes` would be subscribed again within a pause of at most 20 ms.
    const outcome = await Promise.race([
      subscription.closed.then(() => 'closed'),
      waitFor(() => server.received.changes > 1, { timeoutMs: 10_000 }).then(() => 'retried'),
    ]);
    expect(outcome).toBe('closed');
    expect(server.received.changes).toBe(1);
    expect(errors).toHaveLength(1);
    expect((errors[0] as TributaryRequestError).code).toBe(code);
  });
});
