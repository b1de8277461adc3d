/**
 * What a refusal costs the socket and the server: a live model never refused adds one operation
 * (its `changes`), not a probe beside it — 90 of them on a socket the server limits to 100
 * operations must not be refused for probes —; a refusal answered as the server sends it (a result
 * with the error, then `complete`) leaves the socket open (graphql-ws counted that operation's end
 * twice and closed the socket at zero); and its `retryAfterMs` is waited out, on the same socket
 * or on the next one. A scripted server (real sockets); the waits are recorded, not waited.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, documents, TributaryRequestError, type TributaryClient } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { NEVER_MS, recordBackoffWaits } from '../helpers/backoff-waits.ts';
import { emptyRecords, startScriptedServer, type Operation, type Reply } from '../helpers/scripted-server.ts';

const RETRY_AFTER_MS = 59_999;

const isProbe = (operation: Operation) => operation.query.includes('TributaryProbe');

/** Answers what every test here needs but the refused operation: snapshots, positions, probes. */
function answeredPlainly(operation: Operation, reply: Reply): boolean {
  if (operation.query.includes('records(')) reply.next(emptyRecords('c0'));
  else if (operation.query.includes('topicCursor(')) reply.next({ topicCursor: 'c0' });
  else if (isProbe(operation)) reply.next({ __typename: 'Query' });
  else return false;
  reply.complete();
  return true;
}

function connect(url: string): TributaryClient {
  const client = createClient({ url, getToken: () => undefined, onError: () => {}, pingIntervalMs: NEVER_MS, connectTimeoutMs: NEVER_MS });
  onTestFinished(() => client.close());
  return client;
}

const codeOf = (error: unknown) => (error instanceof TributaryRequestError ? error.code : String(error));

describe('the cost of refusals', () => {
  it('sends no probe for live models never refused: each is live once its subscribe is sent', async () => {
    const server = await startScriptedServer((operation, reply) => void answeredPlainly(operation, reply));
    const client = connect(server.url);
    const models = Array.from({ length: 20 }, (_, index) => client.liveModel(`m${index}`));

    await waitFor(() => models.every((model) => model.isLive), { timeoutMs: 10_000, message: 'every model live' });
    // Answered after everything sent before it on the socket reached the server.
    await client.request(documents.TributaryTopicCursorDocument, { topic: 'barrier' });
    expect(server.operations.filter((operation) => operation.query.includes('changes(')).length).toBe(20);
    expect(server.operations.filter(isProbe).length).toBe(0);
  });

  it('keeps the socket open after a refusal sent as the server sends it, and retries on it after retryAfterMs', async () => {
    const ends: number[] = [];
    recordBackoffWaits({ atOnce: true, onWait: (ms) => void ends.push(Date.now() + ms) });
    let refusedAt: number | undefined;
    const attempts: { socket: number; afterTheWait: boolean }[] = [];
    const server = await startScriptedServer((operation, reply) => {
      if (answeredPlainly(operation, reply) || !operation.query.includes('events(')) return;
      attempts.push({
        socket: server.sockets.indexOf(reply.socket),
        afterTheWait: refusedAt !== undefined && ends.some((end) => end >= (refusedAt ?? 0) + RETRY_AFTER_MS),
      });
      if (refusedAt !== undefined) return;
      refusedAt = Date.now();
      reply.refuse({ code: 'RATE_LIMITED', retryAfterMs: RETRY_AFTER_MS }, 'Too many new topics by this subject');
    });
    const client = connect(server.url);
    const log: string[] = [];
    client.subscribeEvents('orders', { onEvent: () => {}, onRetry: (error) => void log.push(`retry ${codeOf(error)}`), onResume: () => void log.push('resume') });

    await waitFor(() => log.includes('resume'), { timeoutMs: 10_000, message: 'refused, then served' });
    expect(attempts).toEqual([
      { socket: 0, afterTheWait: false },
      { socket: 0, afterTheWait: true },
    ]);
    expect(server.sockets.length).toBe(1);
    expect(log).toEqual(['retry RATE_LIMITED', 'resume']);
  });

  it('waits out a refusal’s retryAfterMs on the next socket when the socket is lost during the wait', async () => {
    let refusedAt: number | undefined;
    let acknowledged = -1;
    const waits: { end: number; socket: number }[] = [];
    let held = false;
    recordBackoffWaits({
      // The refusal's own wait is cut short by the socket's loss: it is not run at once.
      atOnce: (ms) => {
        if (ms !== RETRY_AFTER_MS || held) return true;
        held = true;
        return false;
      },
      onWait: (ms) => {
        waits.push({ end: Date.now() + ms, socket: acknowledged });
        if (ms === RETRY_AFTER_MS) server.sockets[0]?.terminate();
      },
    });
    const attempts: { socket: number; afterTheWait: boolean }[] = [];
    const server = await startScriptedServer(
      (operation, reply) => {
        if (answeredPlainly(operation, reply) || !operation.query.includes('changes(')) return;
        const socket = server.sockets.indexOf(reply.socket);
        attempts.push({ socket, afterTheWait: refusedAt !== undefined && waits.some((wait) => wait.socket === socket && wait.end >= (refusedAt ?? 0) + RETRY_AFTER_MS) });
        if (refusedAt !== undefined) return;
        refusedAt = Date.now();
        reply.errorWith({ code: 'RATE_LIMITED', retryAfterMs: RETRY_AFTER_MS }, 'Too many new subscriptions');
      },
      { onAcknowledged: (_socket, index) => void (acknowledged = index) },
    );
    const client = connect(server.url);
    const model = client.liveModel('contacts');

    await waitFor(() => attempts.length === 2 && model.isLive, { timeoutMs: 10_000, message: 'retried on the next socket' });
    expect(attempts).toEqual([
      { socket: 0, afterTheWait: false },
      { socket: 1, afterTheWait: true },
    ]);
  });

  it('moves a live model back to reconnecting when a refusal comes after it was live (the server’s asynchronous limits), and live again once served', async () => {
    let refusals = 2;
    let pending: Reply | undefined;
    let isLive = () => false;
    /** Refuses the held `changes` once the model shows live: the refusal comes after later answers. */
    const refuseWhenLive = () => {
      const reply = pending;
      pending = undefined;
      if (reply) void waitFor(isLive, { timeoutMs: 10_000 }).then(() => reply.refuse({ code: 'RATE_LIMITED' }, 'Too many new topics by this subject'));
    };
    const server = await startScriptedServer((operation, reply) => {
      if (operation.query.includes('changes(') && refusals > 0) {
        refusals -= 1;
        pending = reply;
        // Never refused before: live as its subscribe leaves, with no probe to wait for.
        if (refusals === 1) refuseWhenLive();
        return;
      }
      answeredPlainly(operation, reply);
      // The probe after the retried subscribe is answered first; the refusal follows.
      if (isProbe(operation)) refuseWhenLive();
    });
    const client = connect(server.url);
    const model = client.liveModel('contacts');
    isLive = () => model.isLive;
    const statuses: string[] = [];
    model.subscribe(() => void statuses.push(model.error ? `${model.status}:${codeOf(model.error)}` : model.status));

    await waitFor(() => statuses.length >= 6, { timeoutMs: 15_000, message: 'refused twice after live, then served' });
    expect(statuses).toEqual(['loading', 'live', 'reconnecting:RATE_LIMITED', 'live', 'reconnecting:RATE_LIMITED', 'live']);
    expect(server.operations.filter(isProbe).length).toBe(2);
  });
});
