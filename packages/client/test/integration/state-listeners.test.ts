/**
 * State listeners are the application's code, run in the middle of the connection's own steps: one
 * that throws must not stop those steps (a reconnection never scheduled, subscriptions never
 * attached), and a subscription one starts on `connected` runs once on that socket. Against a
 * scripted server.
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type ConnectionState, type LiveDocument, type TributaryClient } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { startScriptedServer, type Operation, type Reply } from '../helpers/scripted-server.ts';

/** A query the scripted server answers at once: once its answer is back, every message the client sent before it has arrived. */
const MARKER: TypedDocumentNode<{ marker: boolean }, Record<string, never>> = parse('{ marker }');

function answer(operation: Operation, reply: Reply): void {
  if (operation.query.includes('topicCursor')) {
    reply.next({ topicCursor: 'h' });
    reply.complete();
  } else if (operation.query.includes('marker')) {
    reply.next({ marker: true });
    reply.complete();
  } else if (operation.query.includes('document(')) {
    reply.next({ document: { service: 's', id: 'd', operation: 'SNAPSHOT', revision: 5, data: {}, cursor: 'x' } });
  }
}

function connect(url: string, errors: unknown[]): TributaryClient {
  const client = createClient({ url, webSocketImpl: WebSocket, backoff: { initialMs: 20, maxMs: 40 }, onError: (error) => void errors.push(error) });
  onTestFinished(() => client.close());
  return client;
}

describe('state listeners', () => {
  it('reconnects although a listener throws on `reconnecting`; the error goes to onError and the other listeners are told', async () => {
    const server = await startScriptedServer(answer);
    const errors: unknown[] = [];
    const client = connect(server.url, errors);
    const bug = new Error('listener bug');
    client.onStateChange((state) => {
      if (state === 'reconnecting') throw bug;
    });
    const states: ConnectionState[] = [];
    client.onStateChange((state) => void states.push(state));
    await waitFor(() => client.state === 'connected', { message: 'connected' });
    server.sockets[0]!.close(1001, 'Going away');
    await waitFor(() => server.sockets.length === 2 && client.state === 'connected', { message: 'the next socket acknowledged' });
    expect(states).toEqual(['connected', 'reconnecting', 'connected']);
    expect(errors).toEqual([bug]);
  });

  it('attaches the subscriptions although a listener throws on `connected`', async () => {
    const server = await startScriptedServer(answer);
    const errors: unknown[] = [];
    const client = connect(server.url, errors);
    const bug = new Error('listener bug');
    client.onStateChange((state) => {
      if (state === 'connected') throw bug;
    });
    const documents: LiveDocument[] = [];
    client.subscribeDocument('s', 'd', { onDocument: (document) => void documents.push(document) });
    await waitFor(() => documents.length === 1, { message: 'the document' });
    expect(errors).toEqual([bug]);
  });

  it('runs a subscription started by a listener on `connected` once on that socket', async () => {
    const server = await startScriptedServer(answer);
    const client = connect(server.url, []);
    const documents: LiveDocument[] = [];
    let started = false;
    client.onStateChange((state) => {
      if (state !== 'connected' || started) return;
      started = true;
      client.subscribeEvents('orders', { onEvent: () => {} });
      client.subscribeDocument('s', 'd', { onDocument: (document) => void documents.push(document) });
    });
    await waitFor(() => documents.length > 0, { message: 'the document' });
    // Sent after both subscriptions' first messages: its answer means the server has seen them all.
    await client.request(MARKER, {});
    const count = (name: string) => server.operations.filter((operation) => operation.query.includes(name)).length;
    expect([count('topicCursor'), count('document(')]).toEqual([1, 1]);
    expect(documents.map((document) => document.revision)).toEqual([5]);
    expect(server.sockets).toHaveLength(1);
  });
});
