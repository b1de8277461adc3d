/**
 * One INTERNAL_SERVER_ERROR (a server bug, a database error that passes) must not end a
 * subscription for good: subscribeEvents, subscribeDocument and a live model subscribe again on
 * the same socket after a backoff pause, as subscribeModel does. Against a scripted server.
 */
import { expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type LiveDocument, type TopicEvent } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { emptyRecords, startScriptedServer } from '../helpers/scripted-server.ts';

it('subscribes again after an INTERNAL_SERVER_ERROR answer: events, a document and a live model go on, on the same socket', async () => {
  const refused = new Set<string>();
  /** The first subscription of each kind is answered INTERNAL_SERVER_ERROR; the next ones are served. */
  const firstRefused = (kind: string) => {
    if (refused.has(kind)) return false;
    refused.add(kind);
    return true;
  };
  const server = await startScriptedServer((operation, reply) => {
    const { query } = operation;
    if (query.includes('topicCursor')) {
      reply.next({ topicCursor: 'h' });
      return reply.complete();
    }
    if (query.includes('records(')) {
      reply.next(emptyRecords('s'));
      return reply.complete();
    }
    // What a live model sends after its `changes` subscribe to learn the server took it in.
    if (query.includes('TributaryProbe')) {
      reply.next({ __typename: 'Query' });
      return reply.complete();
    }
    const kind = ['events(', 'document(', 'changes('].find((name) => query.includes(name));
    if (kind === undefined) return;
    if (firstRefused(kind)) return reply.error('INTERNAL_SERVER_ERROR', 'Unexpected error.');
    if (kind === 'events(') reply.next({ events: { id: 'e1', topic: 'orders', source: 'SOCKET', type: 't', payload: {}, cursor: 'e1', metadata: { timestamp: 'x', operation: null, revision: null, table: null, entity: null } } });
    if (kind === 'document(') reply.next({ document: { service: 's', id: 'd', operation: 'SNAPSHOT', revision: 1, data: {}, cursor: 'x' } });
  });
  const client = createClient({ url: server.url, webSocketImpl: WebSocket });
  onTestFinished(() => client.close());
  const failures: unknown[] = [];
  const events: TopicEvent[] = [];
  const documents: LiveDocument[] = [];
  client.subscribeEvents('orders', { onEvent: (event) => void events.push(event), onError: (error) => void failures.push(error) });
  client.subscribeDocument('s', 'd', { onDocument: (document) => void documents.push(document), onError: (error) => void failures.push(error) });
  const model = client.liveModel('contacts');
  const subscriptions = (name: string) => server.operations.filter((operation) => operation.query.includes(`${name}(`)).length;

  await waitFor(() => events.length === 1 && documents.length === 1 && subscriptions('changes') === 2 && model.status === 'live', {
    message: 'each subscribed again and served',
  });
  expect(failures).toEqual([]);
  expect([subscriptions('events'), subscriptions('document'), subscriptions('changes')]).toEqual([2, 2, 2]);
  expect(server.sockets).toHaveLength(1);
  expect(model.error).toBeNull();
});
