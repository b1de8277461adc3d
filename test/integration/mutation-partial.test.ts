/**
 * A request with several mutation fields runs each: one refused is null, its error in `errors`
 * with its path, and the fields that ran keep their answers — a new endpoint's secret, shown only
 * this once; an event's id, so a client does not publish it again. Such a response is HTTP 200
 * (the request was executed); a request whose every field was refused keeps its code's status
 * and `data: null`, as before. Real server over HTTP, real Postgres, HS256 tokens.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';

const CREATE_AND_REFUSED_PUBLISH = `mutation {
  a: createWebhookEndpoint(input: { url: "http://127.0.0.1:9/hooks", events: ["orders.*"] }) { secret endpoint { id } }
  b: publish(topic: "system.alerts", type: "x", payload: {}) { id }
}`;
const PUBLISH_THEN_REFUSED = `mutation {
  a: publish(topic: "orders", type: "order.created", payload: { n: 1 }) { id }
  b: publish(topic: "system.alerts", type: "x", payload: {}) { id }
}`;
const REFUSED_ALONE = 'mutation { b: publish(topic: "system.alerts", type: "x", payload: {}) { id } }';

describe('a request with several mutation fields, one refused', () => {
  let server: TestServer;
  let admin: string;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' }, { autoDispose: false });
    admin = await signHs256({ roles: ['admin'], tenant: undefined, permissions: [] });
    return () => server.dispose();
  });

  /**
   * A plain JSON POST is served by the server's own path (graphql-post.ts); one with `extensions`
   * is left to yoga's request handling: both answer alike.
   */
  const post = async (query: string, path: 'plain' | 'yoga' = 'plain') => {
    const response = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${admin}` },
      body: JSON.stringify(path === 'plain' ? { query } : { query, extensions: {} }),
    });
    return { status: response.status, body: (await response.json()) as GraphQLResponseBody };
  };

  it.each(['plain', 'yoga'] as const)('answers the created endpoint with its secret, the refused publish null with its error at ["b"], and HTTP 200 (%s POST)', async (path) => {
    const { status, body } = await post(CREATE_AND_REFUSED_PUBLISH, path);

    expect(body.data?.['a']).toMatchObject({ secret: expect.any(String) as unknown, endpoint: { id: expect.any(String) as unknown } });
    expect(body.data?.['b']).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]).toMatchObject({ path: ['b'], extensions: { code: 'FORBIDDEN' } });
    expect(status).toBe(200);
    const listed = await postGraphQL(server.graphqlUrl, { query: '{ webhookEndpoints { id } }' }, { authorization: `Bearer ${admin}` });
    const { id } = (body.data?.['a'] as { endpoint: { id: string } }).endpoint;
    expect(listed.body.data?.['webhookEndpoints']).toContainEqual({ id });
  });

  it('answers the first of two publishes with its event id when the second is refused, and HTTP 200', async () => {
    const { status, body } = await post(PUBLISH_THEN_REFUSED);

    expect(body.data?.['a']).toEqual({ id: expect.any(String) as unknown });
    expect(body.data?.['b']).toBeNull();
    expect(body.errors?.map((error) => [(error as { path?: unknown }).path, error.extensions?.['code']])).toEqual([[['b'], 'FORBIDDEN']]);
    expect(status).toBe(200);
  });

  it.each(['plain', 'yoga'] as const)('keeps 403 and data null for a request whose only mutation is refused (%s POST)', async (path) => {
    const { status, body } = await post(REFUSED_ALONE, path);

    expect(status).toBe(403);
    expect(body.data).toBeNull();
    expect(body.errors?.map((error) => error.extensions?.['code'])).toEqual(['FORBIDDEN']);
  });
});
