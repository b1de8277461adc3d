/**
 * subscribeEvents' refill across sockets, with scripted sockets (the connection and sessions are
 * stand-ins, as in `resumable.test.ts`: every answer is a promise the test settles, so the order
 * of what happens is the test's, not the network's). A refill begun on a socket that died — its
 * `onResync` stalled on the same dead network — must neither run beside the next socket's refill
 * nor, when it ends last, move the cursor back behind what the next socket delivered.
 */
import { describe, expect, it } from 'vitest';
import type { Connection, SessionUser } from '../../src/connection.ts';
import { SessionEndedError, TributaryRequestError } from '../../src/errors.ts';
import { subscribeEvents, type TopicEvent } from '../../src/events.ts';
import type { Session } from '../../src/session.ts';

const resyncRequired = () => new TributaryRequestError([{ message: 'gone', extensions: { code: 'RESYNC_REQUIRED' } }]);

const event = (id: string): TopicEvent => ({ id, topic: 'orders', source: 'SOCKET', type: 't', payload: {}, cursor: id, metadata: { timestamp: 'x', operation: null, revision: null, table: null, entity: null } });

/** How a scripted socket answers a subscription from `after`: RESYNC_REQUIRED, or these events then nothing until it goes. */
type Answer = 'resync' | readonly string[];

/** A socket whose `topicCursor` is `head`, and whose subscriptions are answered by `answer`. */
function scriptedSession(head: string, answer: (after: string | null) => Answer) {
  const socket = new AbortController();
  const subscribedAfter: (string | null)[] = [];
  const ended = () => new Promise<never>((_resolve, reject) => socket.signal.addEventListener('abort', () => reject(new SessionEndedError()), { once: true }));
  const session = {
    signal: socket.signal,
    execute: () => (socket.signal.aborted ? Promise.reject(new SessionEndedError()) : Promise.resolve({ topicCursor: head })),
    stream: (_document: unknown, variables: { after: string | null }, onData: (data: { events: TopicEvent }) => void) => {
      subscribedAfter.push(variables.after);
      const answered = answer(variables.after);
      if (answered === 'resync') return Promise.reject(resyncRequired());
      for (const id of answered) onData({ events: event(id) });
      return ended();
    },
  };
  return { session: session as unknown as Session, subscribedAfter, end: () => socket.abort(new SessionEndedError(1001)) };
}

/** A connection stand-in: the test attaches each socket itself. */
function scriptedConnection() {
  const users: SessionUser[] = [];
  const connection = {
    use: (user: SessionUser) => {
      users.push(user);
      return () => {};
    },
    beginResync: () => () => {},
    reportHandlerError: (error: unknown) => {
      throw error;
    },
    refreshToken: () => Promise.resolve(),
  };
  return { connection: connection as unknown as Connection, attach: (session: Session) => users.forEach((user) => user.attach(session)) };
}

/** Every promise reaction queued now has run: the stand-ins answer in microtasks only. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

/** An `onResync` whose first call waits until the test releases it; the others end at once. */
function stalledFirstRefetch() {
  const state = { calls: 0, active: 0, maxActive: 0 };
  let release = () => {};
  const onResync = async () => {
    state.calls += 1;
    state.active += 1;
    state.maxActive = Math.max(state.maxActive, state.active);
    if (state.calls === 1) await new Promise<void>((resolve) => (release = resolve));
    state.active -= 1;
  };
  return { state, onResync, release: () => release() };
}

describe('subscribeEvents refills across sockets', () => {
  it('does not move the cursor back when a refill begun on a socket that died ends after the next socket delivered events', async () => {
    const { connection, attach } = scriptedConnection();
    const refetch = stalledFirstRefetch();
    const subscription = subscribeEvents(connection, 'orders', { after: 'c0', onEvent: () => {}, onResync: refetch.onResync });
    const first = scriptedSession('h1', () => 'resync');
    attach(first.session);
    await settled();
    expect(refetch.state.calls).toBe(1);

    // The socket dies while the application refetches; the next one resumes from c0 and delivers.
    first.end();
    const second = scriptedSession('h2', () => ['e1']);
    attach(second.session);
    await settled();
    expect(second.subscribedAfter).toEqual(['c0']);
    expect(subscription.cursor).toBe('e1');

    refetch.release();
    await settled();
    expect(subscription.cursor).toBe('e1');
    // The next socket resumes after what was delivered, not from the stale refill's head.
    second.end();
    const third = scriptedSession('h3', () => []);
    attach(third.session);
    await settled();
    expect(third.subscribedAfter).toEqual(['e1']);
    subscription.close();
  });

  it('runs one refill at a time: the next socket’s waits for the one still running on a socket that died', async () => {
    const { connection, attach } = scriptedConnection();
    const refetch = stalledFirstRefetch();
    const subscription = subscribeEvents(connection, 'orders', { after: 'c0', onEvent: () => {}, onResync: refetch.onResync });
    const first = scriptedSession('h1', () => 'resync');
    attach(first.session);
    await settled();
    first.end();
    // The next socket is refused the same cursor: its refill must wait for the stalled one.
    const second = scriptedSession('h2', (after) => (after === 'h2' ? ['e1'] : 'resync'));
    attach(second.session);
    await settled();
    expect(second.subscribedAfter).toEqual(['c0']);
    expect(refetch.state.calls).toBe(1);

    refetch.release();
    await settled();
    expect(refetch.state).toEqual({ calls: 2, active: 0, maxActive: 1 });
    // The stale refill moved nothing; the second set the cursor to its head, and the stream goes on from there.
    expect(second.subscribedAfter).toEqual(['c0', 'h2']);
    expect(subscription.cursor).toBe('e1');
    subscription.close();
  });
});
