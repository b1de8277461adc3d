import { once } from 'node:events';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { createLogger } from '../../src/logger.ts';
import { createHttpServer } from '../../src/server/http-server.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';

/** A browser's preflight for a cross-origin POST with a token. */
function preflight(url: string, origin: string): Promise<Response> {
  return fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });
}

/** A cross-origin request as a browser sends it (the page's origin in `Origin`), with the page's token if it has one. */
function simpleRequest(url: string, origin: string, token?: string): Promise<Response> {
  return fetch(`${url}?query=${encodeURIComponent('{ __typename }')}`, {
    headers: { origin, accept: 'application/json', ...(token !== undefined && { authorization: `Bearer ${token}` }) },
  });
}

/** A form a page of `origin` submits to the server: a "simple" request, sent without a preflight. */
function formPost(url: string, origin: string, query: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { origin, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ query }).toString(),
  });
}

/**
 * A WebSocket upgrade as a page of `origin` (or, without one, a non-browser client) sends it: its
 * answer. With `host`, the upgrade is addressed to that name (the `Host` header), as after DNS rebinding.
 */
function upgrade(wsUrl: string, origin?: string, host?: string): Promise<number | 'open'> {
  const socket = new WebSocket(wsUrl, GRAPHQL_TRANSPORT_WS_PROTOCOL, {
    ...(origin !== undefined && { origin }),
    ...(host !== undefined && { headers: { host } }),
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => {
      socket.terminate();
      resolve('open');
    });
    socket.once('unexpected-response', (_request, response) => {
      socket.terminate();
      resolve(response.statusCode ?? 0);
    });
    socket.once('error', reject);
  });
}

const CREATE = 'mutation { createDocument(service: "cors", id: "d1", data: { by: "a page" }) { id } }';

interface Answer {
  readonly status: number;
  readonly body: string;
}

/**
 * An HTTP request to the server at `url` (on 127.0.0.1) with `Host: host`: what a browser sends
 * to a name its owner re-pointed at 127.0.0.1 (DNS rebinding), which `fetch` cannot forge.
 */
function requestTo(url: string, host: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const sent = request(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: init.method ?? 'GET', headers: { ...init.headers, host } },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    sent.on('error', reject);
    sent.end(init.body);
  });
}

/** What a page at `host` asks of the server as the development principal, over each route the guard covers; `origin` sent when given. */
async function pageRequests(server: { url: string; graphqlUrl: string; wsUrl: string }, host: string, origin?: string) {
  const headers = { accept: 'application/json', ...(origin !== undefined && { origin }) };
  const json = { ...headers, 'content-type': 'application/json' };
  const answers = {
    post: await requestTo(server.graphqlUrl, host, { method: 'POST', headers: json, body: JSON.stringify({ query: CREATE }) }),
    get: await requestTo(`${server.graphqlUrl}?query=${encodeURIComponent('{ viewer { subject } }')}`, host, { headers }),
    api: await requestTo(`${server.url}/api/alerts`, host, { headers }),
    upgrade: await upgrade(server.wsUrl, origin, host),
  };
  return { ...answers, statuses: { post: answers.post.status, get: answers.get.status, api: answers.api.status, upgrade: answers.upgrade } };
}

describe('CORS', () => {
  it('allows any origin outside production when CORS_ORIGINS is unset and tokens are verified, never with credentials', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const allowed = await preflight(server.graphqlUrl, 'https://anywhere.example');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(allowed.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();

    const simple = await simpleRequest(server.graphqlUrl, 'https://anywhere.example', await signHs256());
    expect(simple.status).toBe(200);
    expect(simple.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(simple.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('allows nothing cross-origin in production when CORS_ORIGINS is unset', async () => {
    const server = await startTestServer({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET });
    const refused = await preflight(server.graphqlUrl, 'https://anywhere.example');
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.headers.get('access-control-allow-methods')).toBeNull();
    const simple = await simpleRequest(server.graphqlUrl, 'https://anywhere.example');
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows exactly the listed origins when CORS_ORIGINS is set', async () => {
    const server = await startTestServer({
      NODE_ENV: 'production',
      JWT_SECRET: TEST_SECRET,
      CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
    });
    for (const origin of ['https://app.example.com', 'http://localhost:5173']) {
      const allowed = await preflight(server.graphqlUrl, origin);
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(origin);
      expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
      const simple = await simpleRequest(server.graphqlUrl, origin);
      expect(simple.headers.get('access-control-allow-origin')).toBe(origin);
      expect(simple.headers.get('vary')).toContain('Origin');
    }
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com']) {
      expect((await preflight(server.graphqlUrl, origin)).headers.get('access-control-allow-origin')).toBeNull();
      expect((await simpleRequest(server.graphqlUrl, origin)).headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('accepts WebSocket upgrades from any origin when tokens are verified', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, CORS_ORIGINS: 'https://app.example.com' });
    expect(await upgrade(server.wsUrl, 'https://evil.example')).toBe('open');
  });
});

describe('development mode (every caller is the admin development principal)', () => {
  it('refuses requests and WebSocket upgrades from pages of other origins with 403, before anything runs', async () => {
    const server = await startTestServer({});
    const evil = 'https://evil.example';

    const form = await formPost(server.graphqlUrl, evil, CREATE);
    expect(form.status).toBe(403);
    expect(form.headers.get('access-control-allow-origin')).toBeNull();
    expect(await form.json()).toEqual({ errors: [{ message: expect.stringContaining('CORS_ORIGINS') as unknown, extensions: { code: 'FORBIDDEN' } }] });
    // Nothing ran: the document the form would have created does not exist.
    const read = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ document(service: "cors", id: "d1") { id } }' }),
    });
    expect(await read.json()).toEqual({ data: { document: null } });

    expect((await preflight(server.graphqlUrl, evil)).status).toBe(403);
    expect((await simpleRequest(server.graphqlUrl, evil)).status).toBe(403);
    expect((await fetch(`${server.url}/api/alerts`, { headers: { origin: evil } })).status).toBe(403);
    expect(await upgrade(server.wsUrl, evil)).toBe(403);
    expect(await upgrade(server.wsUrl, 'null')).toBe(403);
  });

  it("serves the server's own pages, listed origins and clients that send no Origin", async () => {
    const server = await startTestServer({ CORS_ORIGINS: 'http://localhost:5173' });
    const own = new URL(server.url).origin;
    const sameOrigin = await formPost(server.graphqlUrl, own, '{ viewer { subject } }');
    expect({ status: sameOrigin.status, body: (await sameOrigin.json()) as unknown }).toEqual({ status: 200, body: { data: { viewer: { subject: 'development' } } } });
    expect(await upgrade(server.wsUrl, own)).toBe('open');
    expect(await upgrade(server.wsUrl)).toBe('open');

    const listed = await simpleRequest(server.graphqlUrl, 'http://localhost:5173');
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(await upgrade(server.wsUrl, 'http://localhost:5173')).toBe('open');
    expect(await upgrade(server.wsUrl, 'http://localhost:5174')).toBe(403);
  });

  it('allows no other origin by default, and any with CORS_ORIGINS=*', async () => {
    const closed = await startTestServer({});
    expect((await preflight(closed.graphqlUrl, 'http://localhost:5173')).headers.get('access-control-allow-origin')).toBeNull();
    const open = await startTestServer({ CORS_ORIGINS: '*' });
    const allowed = await simpleRequest(open.graphqlUrl, 'https://anywhere.example');
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(await upgrade(open.wsUrl, 'https://anywhere.example')).toBe('open');
  });
});

describe('development mode against DNS rebinding (a page whose name was re-pointed at the server)', () => {
  it('refuses requests and upgrades addressed to an unknown host name, with or without an Origin, before anything runs', async () => {
    const server = await startTestServer({});
    const port = new URL(server.url).port;
    const host = `evil.example:${port}`;
    // After rebinding the page is of the server's origin to the browser: its Origin matches the Host,
    // and a same-origin GET or upgrade carries none at all.
    for (const origin of [`http://evil.example:${port}`, undefined]) {
      const answers = await pageRequests(server, host, origin);
      expect(answers.statuses).toEqual({ post: 403, get: 403, api: 403, upgrade: 403 });
      expect(JSON.parse(answers.post.body)).toEqual({ errors: [{ message: expect.stringContaining('HOST') as unknown, extensions: { code: 'FORBIDDEN' } }] });
      expect(JSON.parse(answers.get.body)).toEqual(JSON.parse(answers.post.body));
      expect(JSON.parse(answers.api.body)).toEqual(JSON.parse(answers.post.body));
    }
    // The mutation did not run.
    const read = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ document(service: "cors", id: "d1") { id } }' }),
    });
    expect(await read.json()).toEqual({ data: { document: null } });
    // Health and metrics stay as they are.
    expect((await requestTo(`${server.url}/health`, host)).status).toBe(200);
    expect((await requestTo(`${server.url}/metrics`, host)).status).toBe(200);
  });

  it('serves requests addressed to localhost, *.localhost and IP addresses, with their own Origin or none', async () => {
    const server = await startTestServer({});
    const port = new URL(server.url).port;
    for (const name of ['localhost', 'app.localhost', '127.0.0.1', '[::1]']) {
      const host = `${name}:${port}`;
      for (const origin of [`http://${host}`, undefined]) {
        const answers = await pageRequests(server, host, origin);
        // /api/alerts answers 200 to the development principal.
        expect({ host, origin, ...answers.statuses }).toEqual({ host, origin, post: 200, get: 200, api: 200, upgrade: 'open' });
        expect(JSON.parse(answers.get.body)).toEqual({ data: { viewer: { subject: 'development' } } });
      }
    }
  });

  it('serves the host names of CORS_ORIGINS, and any host with CORS_ORIGINS=*', async () => {
    const listed = await startTestServer({ CORS_ORIGINS: 'http://devbox.example:5173' });
    const listedPort = new URL(listed.url).port;
    expect((await pageRequests(listed, `devbox.example:${listedPort}`)).statuses).toEqual({ post: 200, get: 200, api: 200, upgrade: 'open' });
    expect((await pageRequests(listed, `other.example:${listedPort}`)).statuses).toEqual({ post: 403, get: 403, api: 403, upgrade: 403 });

    // Every page may call already: a re-pointed name gains nothing.
    const open = await startTestServer({ CORS_ORIGINS: '*' });
    expect((await pageRequests(open, `evil.example:${new URL(open.url).port}`)).statuses).toEqual({ post: 200, get: 200, api: 200, upgrade: 'open' });
  });

  it('serves the name HOST gives', async () => {
    // HOST names the interface the server listens on; this server listens on 127.0.0.1 whatever the name.
    const server = createHttpServer({
      api: { handle: (_request, response) => response.end('admin api ran') },
      readiness: [],
      metrics: new Registry(),
      originGuard: { origins: [], host: 'DevBox.internal' },
      logger: createLogger({ level: 'silent' }),
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/alerts`;
    expect(await requestTo(url, 'devbox.internal:4000')).toEqual({ status: 200, body: 'admin api ran' });
    expect(await requestTo(url, 'devbox.internal.:4000')).toEqual({ status: 200, body: 'admin api ran' });
    expect((await requestTo(url, 'evil.example:4000')).status).toBe(403);
  });

  it('refuses nothing for its host once tokens are verified', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const port = new URL(server.url).port;
    const host = `evil.example:${port}`;
    const authorization = `Bearer ${await signHs256({ roles: ['admin'] })}`;
    for (const origin of [`http://${host}`, undefined]) {
      const headers = { accept: 'application/json', authorization, ...(origin !== undefined && { origin }) };
      const post = await requestTo(server.graphqlUrl, host, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ viewer { subject } }' }) });
      expect(post).toEqual({ status: 200, body: JSON.stringify({ data: { viewer: { subject: 'user-1' } } }) });
      expect((await requestTo(`${server.graphqlUrl}?query=${encodeURIComponent('{ __typename }')}`, host, { headers })).status).toBe(200);
      expect((await requestTo(`${server.url}/api/alerts`, host, { headers })).status).toBe(200);
      expect(await upgrade(server.wsUrl, origin, host)).toBe('open');
    }
  });
});
