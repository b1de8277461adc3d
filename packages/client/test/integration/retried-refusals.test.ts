/**
 * Refusals the client waits out and retries (RATE_LIMITED: the socket's operations at their
 * limit, a subject's rate) are not silent: a live model leaves `live` when its change stream is
 * refused and comes back once the server answered a probe after the retried subscribe (a quiet
 * stream included) — a model never refused is live as its subscribe leaves, with no probe — and
 * documents and events tell `onRetry`, then `onResume`. A scripted server (real sockets) refuses
 * on demand; the server's own limits are tested in the server's suites.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, TributaryRequestError, type TributaryClient } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { emptyRecords, startScriptedServer, type Operation, type Reply } from '../helpers/scripted-server.ts';

/** Answers the probe the client sends after a subscribe to learn whether the server took it in. */
function answeredProbe(operation: Operation, reply: Reply): boolean {
  if (!operation.query.includes('TributaryProbe')) return false;
  reply.next({ __typename: 'Query' });
  reply.complete();
  return true;
}

function connect(url: string, reported: unknown[]): TributaryClient {
  const client = createClient({ url, getToken: () => undefined, onError: (error) => void reported.push(error) });
  onTestFinished(() => client.close());
  return client;
}

const codeOf = (error: unknown) => (error instanceof TributaryRequestError ? error.code : String(error));

describe('refusals the client retries', () => {
  it('keeps a live model out of live while the server refuses its change stream (RATE_LIMITED), with the error; live again once the stream is taken, before any change', async () => {
    let refusals = 2;
    const server = await startScriptedServer((operation, reply) => {
      if (answeredProbe(operation, reply)) return;
      if (operation.query.includes('records(')) {
        reply.next(emptyRecords('c0'));
        reply.complete();
        return;
      }
      // Refused twice, then taken: silent, as a `changes` stream is until a change.
      if (operation.query.includes('changes(') && refusals > 0) {
        refusals -= 1;
        reply.errorWith({ code: 'RATE_LIMITED' }, 'Too many active operations on this connection (limit 100)');
      }
    });
    const reported: unknown[] = [];
    const client = connect(server.url, reported);
    const model = client.liveModel('contacts');
    const statuses: string[] = [];
    model.subscribe(() => void statuses.push(model.error ? `${model.status}:${codeOf(model.error)}` : model.status));

    await waitFor(() => statuses.length === 5 && model.isLive, { timeoutMs: 15_000, message: 'live once the stream is taken' });
    // Live as the first subscribe leaves (nothing refused it yet); after a refusal, once the probe sent after the retry is answered.
    expect(statuses).toEqual(['loading', 'live', 'reconnecting:RATE_LIMITED', 'reconnecting:RATE_LIMITED', 'live']);
    expect(model.error).toBeNull();
    expect(reported.map(codeOf)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
    expect(server.operations.filter((operation) => operation.query.includes('changes(')).length).toBe(3);
    expect(server.operations.filter((operation) => operation.query.includes('TributaryProbe')).length).toBe(2);
  });

  it('tells a document and an events subscription of each refusal it retries (onRetry, the client’s onError), then that it is served again (onResume)', async () => {
    let documentRefusals = 1;
    let eventsRefusals = 1;
    const server = await startScriptedServer((operation, reply) => {
      if (answeredProbe(operation, reply)) return;
      if (operation.query.includes('topicCursor(')) {
        reply.next({ topicCursor: 'c0' });
        reply.complete();
        return;
      }
      if (operation.query.includes('document(')) {
        if (documentRefusals > 0) {
          documentRefusals -= 1;
          reply.errorWith({ code: 'RATE_LIMITED', retryAfterMs: 50 }, 'Too many new subscriptions: retry in 50 ms');
          return;
        }
        reply.next({ document: { service: 'boards', id: 'b1', operation: 'SNAPSHOT', revision: 1, data: { title: 'Sprint' }, cursor: 'd1' } });
        return;
      }
      if (operation.query.includes('events(') && eventsRefusals > 0) {
        eventsRefusals -= 1;
        reply.errorWith({ code: 'UNAVAILABLE' }, 'The event log is unavailable');
      }
    });
    const reported: unknown[] = [];
    const client = connect(server.url, reported);
    const documentLog: string[] = [];
    client.subscribeDocument('boards', 'b1', {
      onDocument: (document) => void documentLog.push(`document ${document.revision}`),
      onRetry: (error) => void documentLog.push(`retry ${codeOf(error)}`),
      onResume: () => void documentLog.push('resume'),
      onError: (error) => void documentLog.push(`error ${codeOf(error)}`),
    });
    const eventsLog: string[] = [];
    client.subscribeEvents('orders', {
      onEvent: () => void eventsLog.push('event'),
      onRetry: (error) => void eventsLog.push(`retry ${codeOf(error)}`),
      onResume: () => void eventsLog.push('resume'),
      onError: (error) => void eventsLog.push(`error ${codeOf(error)}`),
    });

    await waitFor(() => documentLog.length === 3 && eventsLog.length === 2, { timeoutMs: 15_000, message: 'refused, then served' });
    expect(documentLog).toEqual(['retry RATE_LIMITED', 'resume', 'document 1']);
    // A quiet topic: served again once the server answered the probe after its subscribe.
    expect(eventsLog).toEqual(['retry UNAVAILABLE', 'resume']);
    expect(reported.map(codeOf).sort()).toEqual(['RATE_LIMITED', 'UNAVAILABLE']);
  });
});
