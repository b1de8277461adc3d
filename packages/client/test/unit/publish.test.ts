import { webcrypto } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { isRetryablePublishError, SessionEndedError, TributaryRequestError } from '@tributary/client';
import { publishWithRetry } from '../../src/publish.ts';
import type { TributaryPublishMutation, TributaryPublishMutationVariables } from '../../src/generated.ts';

const EVENT: TributaryPublishMutation['publish'] = {
  id: 'evt_1',
  topic: 'orders',
  source: 'SOCKET',
  type: 'message',
  payload: { n: 1 },
  cursor: 'c1',
  metadata: { timestamp: '2026-12-03T00:00:00.000Z', operation: null, revision: null, table: null, entity: null },
};
const NO_WAIT = { backoff: { initialMs: 0, maxMs: 0 } };
const unavailable = () => new TributaryRequestError([{ message: 'down', extensions: { code: 'UNAVAILABLE' } }]);
const inFlight = () => new TributaryRequestError([{ message: 'held', extensions: { code: 'CONFLICT', field: 'idempotencyKey', inFlight: true } }]);
const conflict = () => new TributaryRequestError([{ message: 'other request', extensions: { code: 'CONFLICT', field: 'idempotencyKey' } }]);

/** A request that fails with `failures` in turn, then answers EVENT; records what it was sent. */
function scripted(failures: Error[]) {
  const sent: TributaryPublishMutationVariables[] = [];
  const request = (variables: TributaryPublishMutationVariables) => {
    sent.push(variables);
    const failure = failures.shift();
    return failure ? Promise.reject(failure) : Promise.resolve({ publish: EVENT });
  };
  return { request, sent };
}

describe('publishWithRetry', () => {
  it('retries a lost socket, UNAVAILABLE and a key still in flight with the same key, and answers the event', async () => {
    const { request, sent } = scripted([new SessionEndedError(), unavailable(), inFlight()]);
    const retries: number[] = [];
    const keys: string[] = [];
    const event = await publishWithRetry(
      request,
      'orders',
      { n: 1 },
      { ...NO_WAIT, onRetry: (_error, attempt, key) => (retries.push(attempt), keys.push(key)) },
      new AbortController().signal,
    );
    expect(event).toEqual(EVENT);
    expect(retries).toEqual([1, 2, 3]);
    expect(sent).toHaveLength(4);
    expect(new Set([...sent.map((variables) => variables.idempotencyKey), ...keys]).size).toBe(1);
    expect(sent[0]).toMatchObject({ topic: 'orders', payload: { n: 1 }, type: null });
    expect(sent[0]!.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('uses the key it is given, and gives up after `attempts` tries with the last error', async () => {
    const last = unavailable();
    const { request, sent } = scripted([unavailable(), unavailable(), last]);
    await expect(publishWithRetry(request, 'orders', { n: 1 }, { ...NO_WAIT, attempts: 3, idempotencyKey: 'mine' }, new AbortController().signal)).rejects.toBe(last);
    expect(sent.map((variables) => variables.idempotencyKey)).toEqual(['mine', 'mine', 'mine']);
  });

  it('sends the entity it is given on every try, and none when it is not', async () => {
    const { request, sent } = scripted([unavailable()]);
    await publishWithRetry(request, 'orders', { n: 1 }, { ...NO_WAIT, entity: 'order-1' }, new AbortController().signal);
    expect(sent.map((variables) => variables.entity)).toEqual(['order-1', 'order-1']);
    const plain = scripted([]);
    await publishWithRetry(plain.request, 'orders', { n: 1 }, NO_WAIT, new AbortController().signal);
    expect(plain.sent[0]?.entity).toBeNull();
  });

  it('does not retry an error a retry would not mend, nor once the client is closed', async () => {
    const refused = conflict();
    const first = scripted([refused]);
    await expect(publishWithRetry(first.request, 'orders', { n: 1 }, NO_WAIT, new AbortController().signal)).rejects.toBe(refused);
    expect(first.sent).toHaveLength(1);

    const closed = new AbortController();
    closed.abort();
    const second = scripted([]);
    await expect(publishWithRetry(second.request, 'orders', { n: 1 }, NO_WAIT, closed.signal)).rejects.toBeInstanceOf(SessionEndedError);
    // Closed before the first try: nothing is sent.
    expect(second.sent).toHaveLength(0);
  });

  it('stops waiting for its next try when the client closes, with SessionEndedError', async () => {
    const closing = new AbortController();
    const { request, sent } = scripted([unavailable(), unavailable()]);
    // An hour's wait: only the close can end it.
    const pending = publishWithRetry(request, 'orders', { n: 1 }, { backoff: { initialMs: 3_600_000, maxMs: 3_600_000 }, onRetry: () => closing.abort() }, closing.signal);
    await expect(pending).rejects.toBeInstanceOf(SessionEndedError);
    expect(sent).toHaveLength(1);
  });

  it("ends with the caller's own signal's reason: before the first try, and while waiting for the next", async () => {
    const aborted = new AbortController();
    aborted.abort();
    const before = scripted([]);
    // The client's signal follows the caller's (client.ts): both aborted.
    await expect(publishWithRetry(before.request, 'orders', { n: 1 }, { ...NO_WAIT, signal: aborted.signal }, aborted.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(before.sent).toHaveLength(0);

    const caller = new AbortController();
    const reason = new Error('user left the page');
    const waiting = scripted([unavailable(), unavailable()]);
    const pending = publishWithRetry(
      waiting.request,
      'orders',
      { n: 1 },
      { backoff: { initialMs: 3_600_000, maxMs: 3_600_000 }, signal: caller.signal, onRetry: () => caller.abort(reason) },
      caller.signal,
    );
    await expect(pending).rejects.toBe(reason);
    expect(waiting.sent).toHaveLength(1);
  });

  it("ends with the caller's reason when the signal aborts during a try, with no retry", async () => {
    const caller = new AbortController();
    const retries: number[] = [];
    const sent: TributaryPublishMutationVariables[] = [];
    // The try is cut by the abort (as requestUntil cuts it: SessionEndedError), a retryable error.
    const request = (variables: TributaryPublishMutationVariables) => {
      sent.push(variables);
      caller.abort();
      return Promise.reject(new SessionEndedError());
    };
    await expect(publishWithRetry(request, 'orders', { n: 1 }, { ...NO_WAIT, signal: caller.signal, onRetry: (_error, attempt) => retries.push(attempt) }, caller.signal)).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(sent).toHaveLength(1);
    expect(retries).toEqual([]);
  });

  it('makes a v4 UUID key without crypto.randomUUID (a browser page outside a secure context)', async () => {
    vi.stubGlobal('crypto', { getRandomValues: <T extends Uint8Array>(bytes: T) => webcrypto.getRandomValues(bytes) });
    try {
      const { request, sent } = scripted([]);
      await publishWithRetry(request, 'orders', { n: 1 }, NO_WAIT, new AbortController().signal);
      expect(sent[0]!.idempotencyKey).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('tells which errors are worth a retry', () => {
    const rateLimited = new TributaryRequestError([{ message: 'too many operations', extensions: { code: 'RATE_LIMITED' } }]);
    // A socket whose token expired refuses operations during its grace period, until it has a new one.
    const expired = new TributaryRequestError([{ message: 'Token expired: send refreshAuth with a new token first', extensions: { code: 'UNAUTHENTICATED' } }]);
    expect([new SessionEndedError(), new SessionEndedError(1006), unavailable(), inFlight(), rateLimited, expired].map(isRetryablePublishError)).toEqual([true, true, true, true, true, true]);
    const forbidden = new TributaryRequestError([{ message: 'no', extensions: { code: 'FORBIDDEN' } }]);
    // Too big a message, or no longer authorized: a retry would meet the same.
    const final = [conflict(), forbidden, new Error('x'), new SessionEndedError(1009), new SessionEndedError(4401), new SessionEndedError(4403), new SessionEndedError(4412)];
    expect(final.map(isRetryablePublishError)).toEqual(final.map(() => false));
  });

  it('waits at least the retryAfterMs a RATE_LIMITED refusal names before the next try', async () => {
    vi.useFakeTimers();
    try {
      const limited = new TributaryRequestError([{ message: 'Too many publishes', extensions: { code: 'RATE_LIMITED', retryAfterMs: 4_000 } }]);
      const { request, sent } = scripted([limited]);
      const published = publishWithRetry(request, 'orders', { n: 1 }, NO_WAIT, new AbortController().signal);
      await vi.advanceTimersByTimeAsync(3_999);
      expect(sent).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(sent).toHaveLength(2);
      expect(await published).toEqual(EVENT);
    } finally {
      vi.useRealTimers();
    }
  });
});

