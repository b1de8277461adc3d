/**
 * One error shape on the plain HTTP routes: `{ "error": "<message>", "code": "<CODE>" }` with a
 * code of `src/errors.ts` — an unknown path (404 NOT_FOUND), one under `/admin` (the admin UI's),
 * a wrong method there (405), `/metrics` refused (401) or failing (500) — with the same JSON
 * headers wherever it is answered. The REST API under `/api/` keeps GraphQL's shape (README).
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createHttpServer } from '../../src/server/http-server.ts';
import { startTestServer } from '../helpers/tributary.ts';

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' };

async function answer(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Record<string, string | null>; body: unknown }> {
  const response = await fetch(url, init);
  const headers = Object.fromEntries(Object.keys(JSON_HEADERS).map((name) => [name, response.headers.get(name)]));
  return { status: response.status, headers, body: await response.json() };
}

describe('HTTP errors outside GraphQL', () => {
  it('answers every plain route’s error as { error, code } with a code of errors.ts, and the REST API’s as GraphQL does', async () => {
    const server = await startTestServer({ METRICS_TOKEN: 'metrics-token-0123456789' });
    const cases: [string, RequestInit, number, string][] = [
      ['/nope', {}, 404, ErrorCode.NOT_FOUND],
      ['/admin/nope.js', {}, 404, ErrorCode.NOT_FOUND],
      ['/admin', { method: 'POST' }, 405, ErrorCode.BAD_USER_INPUT],
      ['/metrics', {}, 401, ErrorCode.UNAUTHENTICATED],
    ];
    for (const [path, init, status, code] of cases) {
      const got = await answer(`${server.url}${path}`, init);
      expect(got, path).toEqual({ status, headers: JSON_HEADERS, body: { error: expect.any(String) as unknown, code } });
    }
    expect(Object.values(ErrorCode)).toEqual(expect.arrayContaining(cases.map(([, , , code]) => code)));

    expect(await answer(`${server.url}/api/nope`)).toEqual({
      status: 404,
      headers: JSON_HEADERS,
      body: { errors: [{ message: 'Not found', extensions: { code: ErrorCode.NOT_FOUND } }] },
    });
  });

  it('answers /graphql in a process that serves none, and a /metrics that fails, in the same shape', async () => {
    const failing = { contentType: 'text/plain', metrics: () => Promise.reject(new Error('collector broke')) } as unknown as Registry;
    const server = createHttpServer({ readiness: [], metrics: failing, logger: createLogger({ level: 'silent' }) });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    expect(await answer(`${base}/graphql`)).toEqual({ status: 404, headers: JSON_HEADERS, body: { error: 'Not found', code: ErrorCode.NOT_FOUND } });
    expect(await answer(`${base}/metrics`)).toEqual({
      status: 500,
      headers: JSON_HEADERS,
      body: { error: expect.any(String) as unknown, code: ErrorCode.INTERNAL_SERVER_ERROR },
    });
  });

  it('lists the codes yoga answers malformed and oversized requests with', () => {
    expect(ErrorCode).toMatchObject({ BAD_REQUEST: 'BAD_REQUEST', REQUEST_ENTITY_TOO_LARGE: 'REQUEST_ENTITY_TOO_LARGE' });
  });

  it('lists the codes a document the schema refuses is answered with, as they are answered', async () => {
    const server = await startTestServer();
    const codeOf = async (body: Record<string, unknown>) => {
      const response = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return ((await response.json()) as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code;
    };
    const answered = [await codeOf({ query: '{ noSuchField }' }), await codeOf({ query: 'query A { __typename } query B { __typename }' })];
    expect(answered).toEqual([ErrorCode.GRAPHQL_VALIDATION_FAILED, ErrorCode.OPERATION_RESOLUTION_FAILURE]);
  });
});
