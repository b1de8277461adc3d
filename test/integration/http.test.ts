import WebSocket from 'ws';
import { beforeAll, describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';

describe('HTTP edge', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ HTTP_MAX_BODY_BYTES: '4096' }, { autoDispose: false });
    return () => server.dispose();
  });

  async function post(body: string, headers: Record<string, string> = {}) {
    const response = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
      body,
    });
    return { status: response.status, body: (await response.json()) as { errors?: { message: string; extensions?: { code?: string } }[] } };
  }

  it('runs a query over HTTP', async () => {
    const result = await postGraphQL(server.graphqlUrl, { query: '{ viewer { subject tenant } }' });
    expect(result).toEqual({ status: 200, body: { data: { viewer: { subject: 'development', tenant: 'default' } } } });
  });

  it('answers malformed JSON with 400 and a clear message', async () => {
    const result = await post('{"query": "{ viewer { subject }');
    expect(result.status).toBe(400);
    expect(result.body.errors?.[0]?.message).toBe('POST body sent invalid JSON.');
    expect(result.body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });

  it('refuses a body larger than HTTP_MAX_BODY_BYTES with 413', async () => {
    const padding = 'x'.repeat(5000);
    const response = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ viewer { subject } } # ${padding}` }),
    });
    expect(response.status).toBe(413);
  });

  it('refuses unknown fields in the request body', async () => {
    const result = await post(JSON.stringify({ query: '{ viewer { subject } }', bogus: 1 }));
    expect(result.status).toBe(400);
    expect(result.body.errors?.[0]).toMatchObject({ message: 'Unexpected parameter "bogus" in the request body.', extensions: { code: 'BAD_REQUEST' } });
  });

  it('refuses a field the schema does not have, naming it', async () => {
    const result = await post(JSON.stringify({ query: '{ viewer { nope } }' }));
    expect(result.status).toBe(400);
    expect(result.body.errors?.[0]?.message).toBe('Cannot query field "nope" on type "Viewer".');
  });

  it('answers bad input to a resolver with BAD_USER_INPUT', async () => {
    const result = await post(JSON.stringify({ query: 'mutation { broadcast(channel: "has space", event: "e") }' }));
    expect(result.status).toBe(200);
    expect(result.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('names the argument that is wrong: an event type or a channel event is not called a topic', async () => {
    const badType = await post(JSON.stringify({ query: 'mutation { publish(topic: "t", type: "has space", payload: {}) { id } }' }));
    expect(badType.body.errors?.[0]?.message).toMatch(/^Invalid type name/);
    expect(badType.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'type' });
    const badEvent = await post(JSON.stringify({ query: 'mutation { broadcast(channel: "c", event: "has space") }' }));
    expect(badEvent.body.errors?.[0]?.message).toMatch(/^Invalid event name/);
    expect(badEvent.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'event' });
  });

  it('refuses subscriptions over HTTP and points to the WebSocket', async () => {
    const result = await post(JSON.stringify({ query: 'subscription { channel(name: "a") { event } }' }));
    expect(result.body.errors?.[0]).toMatchObject({
      message: 'Subscriptions are served over WebSocket (graphql-transport-ws) at /graphql',
      extensions: { code: 'WEBSOCKET_ONLY' },
    });
  });

  it('serves GraphiQL to a browser with its assets inline and subscriptions over WebSocket', async () => {
    const response = await fetch(server.graphqlUrl, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const html = await response.text();
    expect(html).toContain('<title>Tributary</title>');
    expect(html).toContain('"subscriptionsProtocol":"WS"');
    // Offline: no script or stylesheet is fetched from elsewhere.
    expect(html).not.toMatch(/<script[^>]+src="https?:/);
    expect(html).not.toMatch(/<link[^>]+href="https?:/);
  });

  it('refuses WebSocket upgrades on other paths with 404', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/elsewhere`, 'graphql-transport-ws');
    const status = await new Promise<number | undefined>((resolve) => {
      socket.on('unexpected-response', (_request, response) => resolve(response.statusCode));
      socket.on('error', () => resolve(undefined));
    });
    expect(status).toBe(404);
  });
});
