/**
 * The admin UI's static files (`static/`: one page, one ES module, one style sheet; no build step),
 * served at `/admin` beside the REST routes they call. Only the files of `FILES` are served, read
 * once when the server is created: a request path is looked up in that list as it was sent, never
 * joined to a directory, so no path (`/admin/../package.json`, `%2e%2e`, `%2f`…) reaches the disk,
 * and nothing lists the folder.
 *
 * Headers: a Content-Security-Policy that allows this origin's script, style and API calls only
 * (no inline code, no other origin, Trusted Types: the script builds the DOM without HTML
 * strings), not framed; `nosniff`; `no-cache` with an ETag — the names carry no version, so the
 * browser revalidates each load (304 when unchanged) and a deploy is seen at once.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../../errors.ts';
import { sendError } from '../rest/json-response.ts';

/** The page's path; its files are under `/admin/`. */
const ADMIN_UI_PATH = '/admin';

/** What the page may load and call; `connect-src 'self'` is the REST API beside it. */
export const ADMIN_UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Request path → file of `static/` and its type. The page answers at `/admin`, `/admin/` and `/admin/index.html`. */
const FILES: Readonly<Record<string, { readonly file: string; readonly type: string }>> = {
  [ADMIN_UI_PATH]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [`${ADMIN_UI_PATH}/`]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [`${ADMIN_UI_PATH}/index.html`]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [`${ADMIN_UI_PATH}/admin.js`]: { file: 'admin.js', type: 'text/javascript; charset=utf-8' },
  [`${ADMIN_UI_PATH}/admin.css`]: { file: 'admin.css', type: 'text/css; charset=utf-8' },
};

const STATIC_DIRECTORY = new URL('./static/', import.meta.url);

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  /** Strong validator: a digest of the content. */
  readonly etag: string;
}

export interface AdminUi {
  /** Answers a request whose path `isAdminUiPath` (the path without its query). */
  handle(request: IncomingMessage, response: ServerResponse, path: string): void;
}

/** Whether a request path is the admin UI's (`/admin` or under `/admin/`): answered by it, 404 included. */
export function isAdminUiPath(path: string): boolean {
  return path === ADMIN_UI_PATH || path.startsWith(`${ADMIN_UI_PATH}/`);
}

/** Reads the files once (a few tens of KB); throws when one is missing (a broken install fails at start). */
export function createAdminUi(): AdminUi {
  const contents = new Map<string, Buffer>();
  const files = new Map<string, StaticFile>();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    let body = contents.get(file);
    if (body === undefined) {
      body = readFileSync(new URL(file, STATIC_DIRECTORY));
      contents.set(file, body);
    }
    files.set(path, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
  }

  return {
    handle(request, response, path) {
      const file = files.get(path);
      if (file === undefined) {
        sendError(response, 404, ErrorCode.NOT_FOUND, 'Not found');
        return;
      }
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.setHeader('allow', 'GET, HEAD');
        sendError(response, 405, ErrorCode.BAD_USER_INPUT, 'Only GET and HEAD are allowed here');
        return;
      }
      const headers = {
        'content-type': file.type,
        'cache-control': 'no-cache',
        etag: file.etag,
        'content-security-policy': ADMIN_UI_CSP,
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'referrer-policy': 'no-referrer',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
      };
      if (matches(request.headers['if-none-match'], file.etag)) {
        response.writeHead(304, headers);
        response.end();
        return;
      }
      response.writeHead(200, { ...headers, 'content-length': file.body.length });
      response.end(request.method === 'HEAD' ? undefined : file.body);
    },
  };
}

/** `If-None-Match`: `*` or a list of tags, weak ones (`W/"…"`) compared as strong (RFC 9110 §13.1.2). */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed.replace(/^W\//, '') === etag;
  });
}
