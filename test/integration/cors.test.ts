import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
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

/** A WebSocket upgrade as a page of `origin` (or, without one, a non-browser client) sends it: its answer. */
function upgrade(wsUrl: string, origin?: string): Promise<number | 'open'> {
  const socket = new WebSocket(wsUrl, GRAPHQL_TRANSPORT_WS_PROTOCOL, origin === undefined ? {} : { origin });
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
