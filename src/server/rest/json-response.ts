/**
 * The server's JSON answers outside yoga, written one way: `sendJson` for every body (`/health`,
 * `/ready`, the REST API, the admin UI's refusals), `sendError` for the errors of the plain routes,
 * `{ "error": "<message>", "code": "<CODE>" }` with a code of `src/errors.ts` (the REST API and the
 * `/graphql` refusals answer theirs as GraphQL does: `{ errors: [{ message, extensions: { code } }] }`).
 */
import type { ServerResponse } from 'node:http';
import type { ErrorCode } from '../../errors.ts';

/** Writes `body` as JSON with `status`: not stored by caches (an answer about now or about the caller), not sniffed as anything else. */
export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  response.end(text);
}

/** A plain route's error: `{ error: message, code }`. */
export function sendError(response: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(response, status, { error: message, code });
}
