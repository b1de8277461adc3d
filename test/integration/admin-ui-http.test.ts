/**
 * The admin UI's static files over real HTTP: served at `/admin` from a fixed list with strict
 * headers, revalidated by ETag, nothing else under `/admin/` (traversal in every spelling, the
 * folder's other files) — and only by a process that serves the REST API, not the workers role.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ADMIN_UI_CSP } from '../../src/server/admin-ui/admin-ui.ts';
import { createTestDatabase, testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** A request whose path is sent exactly as written (fetch would resolve `..` and re-encode it). */
function raw(server: TestServer, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port: server.port, path, method: options.method ?? 'GET', headers: options.headers }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, body: Buffer.concat(chunks).toString('utf8') }));
      incoming.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

const TRAVERSALS = [
  '/admin/../package.json',
  '/admin/%2e%2e/package.json',
  '/admin/%2E%2E/package.json',
  '/admin/..%2fpackage.json',
  '/admin/..%2Fpackage.json',
  '/admin/%2e%2e%2fpackage.json',
  '/admin/..%5cpackage.json',
  '/admin/..\\package.json',
  '/admin/../../../../etc/passwd',
  '/admin/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
  '/admin/static/admin.js',
  '/admin/./admin.js',
  '/admin//admin.js',
  '/admin/admin.js%00.css',
];

describe('admin UI over HTTP', () => {
  it('serves the page at /admin, /admin/ and /admin/index.html, and its script and style, with strict headers', async () => {
    const server = await startTestServer();
    for (const path of ['/admin', '/admin/', '/admin/index.html', '/admin?tab=x']) {
      const page = await raw(server, path);
      expect(page.status, path).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.body).toContain('<script type="module" src="/admin/admin.js"></script>');
      expect(page.body).toContain('<link rel="stylesheet" href="/admin/admin.css">');
    }
    const expected = {
      '/admin/admin.js': ['text/javascript; charset=utf-8', '/api/metrics/dashboard', 'sessionStorage'],
      '/admin/admin.css': ['text/css; charset=utf-8', ':root', 'color-scheme'],
    } as const;
    for (const [path, [type, ...fragments]] of Object.entries(expected)) {
      const asset = await raw(server, path);
      expect(asset.status, path).toBe(200);
      expect(asset.headers['content-type']).toBe(type);
      for (const fragment of fragments) expect(asset.body).toContain(fragment);
    }
    const page = await raw(server, '/admin/');
    expect(page.headers['content-security-policy']).toBe(ADMIN_UI_CSP);
    // What the policy must hold: no inline code or other origin, API calls to this origin, no framing.
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      expect(ADMIN_UI_CSP.split('; ')).toContain(directive);
    }
    expect(ADMIN_UI_CSP).not.toMatch(/unsafe|\*|https?:/);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['content-length']).toBe(String(Buffer.byteLength(page.body)));
    // No inline script or style in the page itself (the policy would block them).
    expect(page.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i);
  });

  it('revalidates with the ETag (304), answers HEAD without a body and refuses other methods', async () => {
    const server = await startTestServer();
    const first = await raw(server, '/admin/admin.js');
    const etag = first.headers['etag'];
    expect(etag).toMatch(/^"[\w-]{27}"$/);
    const again = await raw(server, '/admin/admin.js', { headers: { 'if-none-match': String(etag) } });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers['content-security-policy']).toBe(ADMIN_UI_CSP);
    expect((await raw(server, '/admin/admin.js', { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
    // The page and the script are different files: different tags.
    expect((await raw(server, '/admin')).headers['etag']).not.toBe(etag);

    const head = await raw(server, '/admin', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe((await raw(server, '/admin')).headers['content-length']);

    for (const method of ['POST', 'PUT', 'DELETE']) {
      const refused = await raw(server, '/admin/', { method });
      expect(refused.status, method).toBe(405);
      expect(refused.headers['allow']).toBe('GET, HEAD');
    }
  });

  it('answers 404 for any other path under /admin — traversal in every spelling, the folder’s other files — and lists nothing', async () => {
    const server = await startTestServer();
    const others = ['/admin/tsconfig.json', '/admin/admin-ui.ts', '/admin/index.htm', '/admin/favicon.ico', '/admin/static/', '/admin/ADMIN.JS'];
    for (const path of [...TRAVERSALS, ...others]) {
      const answer = await raw(server, path);
      expect(answer.status, path).toBe(404);
      expect(answer.headers['x-content-type-options'], path).toBe('nosniff');
      expect(JSON.parse(answer.body), path).toEqual({ error: 'Not found', code: 'NOT_FOUND' });
    }
    // Paths that only look like it are the server's ordinary 404.
    for (const path of ['/adminx', '/ADMIN', '/admin.js']) expect((await raw(server, path)).status, path).toBe(404);
  });

  it('is served by the server role and not by the workers role, which serves no REST API', async () => {
    const database = await createTestDatabase({ migrated: true });
    const shared = { DATABASE_URL: database.url, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() };
    const [server, workers] = await Promise.all([startTestServer({ ...shared, TRIBUTARY_ROLE: 'server' }), startTestServer({ ...shared, TRIBUTARY_ROLE: 'workers' })]);
    expect((await raw(workers, '/health')).status).toBe(200);
    for (const path of ['/admin', '/admin/', '/admin/admin.js', '/admin/admin.css']) {
      expect((await raw(server, path)).status, path).toBe(200);
      expect((await raw(workers, path)).status, path).toBe(404);
    }
  });
});
