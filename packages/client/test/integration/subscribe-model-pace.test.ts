/**
 * subscribeModel at its handler's pace: what arrives while `onChange` works is held up to
 * `maxBufferedChanges`, then the subscription is dropped and, once those are handled, subscribed
 * again from the cursor — the server replays the rest, nothing piles up in memory; after `close()`
 * no change is handed over. One socket for the position read and the subscription. Against a
 * scripted server that sends every change after `after` at once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { subscribeModel, type ModelChangeEvent } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { emptyRecords, startScriptedServer } from '../helpers/scripted-server.ts';

const change = (index: number): ModelChangeEvent => ({
  eventId: `e${index}`,
  operation: 'UPDATED',
  model: 'contacts',
  id: String(index),
  record: { id: index },
  unchangedColumns: [],
  cursor: `c${index}`,
  lastUpdatedAt: '2026-01-01T00:00:00Z',
});

/** A model at position `p` with `total` changes after it; each `changes` subscription gets all those after its `after` at once. */
async function startModelServer(total: number) {
  /** Each `changes` subscription: its `after`, what the handler had been handed when it arrived, whether the client completed it. */
  const subscriptions: { after: unknown; handedBefore: number; completed: boolean }[] = [];
  let handed = 0;
  const server = await startScriptedServer((operation, reply) => {
    if (operation.query.includes('records(')) {
      reply.next(emptyRecords('p'));
      return reply.complete();
    }
    if (!operation.query.includes('changes(')) return;
    const subscription = { after: operation.variables['after'], handedBefore: handed, completed: false };
    subscriptions.push(subscription);
    reply.socket.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as { type: string; id?: string };
      if (message.type === 'complete' && message.id === operation.id) subscription.completed = true;
    });
    const from = subscription.after === 'p' ? 0 : Number(String(subscription.after).slice(1)) + 1;
    for (let index = from; index < total; index += 1) reply.next({ changes: change(index) });
  });
  return { server, subscriptions, countHanded: () => (handed += 1) };
}

/** An `onChange` whose `stallAt`-th change waits until the test releases it. */
function stalledHandler(stallAt: number, onHanded: () => void) {
  const handed: string[] = [];
  let release = () => {};
  const onChange = async (received: ModelChangeEvent) => {
    handed.push(received.cursor);
    onHanded();
    if (handed.length === stallAt) await new Promise<void>((resolve) => (release = resolve));
  };
  return { handed, onChange, release: () => release() };
}

describe('subscribeModel at the handler’s pace', () => {
  it('drops the subscription past maxBufferedChanges while the handler works, and subscribes again from the last change it finished', async () => {
    const total = 50;
    const { server, subscriptions, countHanded } = await startModelServer(total);
    const handler = stalledHandler(1, countHanded);
    const subscription = subscribeModel({ url: server.url, webSocketImpl: WebSocket, token: 't', model: 'contacts', maxBufferedChanges: 10, onChange: handler.onChange });
    onTestFinished(async () => {
      subscription.close();
      await subscription.closed;
    });
    // The handler is stuck on the first change: the client stops the stream instead of holding all 50.
    await waitFor(() => subscriptions[0]?.completed, { message: 'the first subscription completed by the client' });
    expect(handler.handed).toEqual(['c0']);

    handler.release();
    await waitFor(() => handler.handed.length === total, { message: 'every change handed over' });
    expect(handler.handed).toEqual(Array.from({ length: total }, (_, index) => `c${index}`));
    expect(subscriptions.length).toBeGreaterThan(1);
    expect(subscriptions[0]!.after).toBe('p');
    for (const later of subscriptions.slice(1)) {
      // Subscribed again once the handler had finished what was held: from the last change it was handed.
      expect(later.after).toBe(handler.handed[later.handedBefore - 1]);
    }
    // From the first subscription, only the change being handled and the ten held.
    expect(subscriptions[1]!.handedBefore).toBeLessThanOrEqual(11);
    // The position read and every subscription on one socket.
    expect(server.sockets).toHaveLength(1);
  });

  it('hands no change over after close(), and `closed` settles once the running handler has finished', async () => {
    const { server, countHanded } = await startModelServer(100);
    const handler = stalledHandler(3, countHanded);
    const subscription = subscribeModel({ url: server.url, webSocketImpl: WebSocket, token: 't', model: 'contacts', after: 'p', onChange: handler.onChange });
    await waitFor(() => handler.handed.length === 3, { message: 'three changes handed over' });
    subscription.close();
    handler.release();
    await subscription.closed;
    expect(handler.handed).toEqual(['c0', 'c1', 'c2']);
    expect(subscription.cursor()).toBe('c2');
  });
});
