import { describe, expect, it } from 'vitest';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

describe.each(['memory', 'redis'])('topicCursor (%s)', (mode) => {
  const env = (): Record<string, string> => (mode === 'redis' ? { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() } : {});

  it('gives a cursor after which a subscription receives every later event, published before it subscribed too', async () => {
    const server = await startTestServer(env());
    await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "t", payload: { n: 0 }) { id } }' });
    const head = await postGraphQL(server.graphqlUrl, { query: '{ topicCursor(topic: "t") }' });
    const cursor = head.body.data?.['topicCursor'];
    expect(typeof cursor).toBe('string');

    // Published between reading the cursor and subscribing: must not be lost.
    await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "t", payload: { n: 1 }) { id } }' });
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({
      id: 's',
      type: 'subscribe',
      payload: { query: 'subscription($after: String) { events(topic: "t", after: $after) { payload } }', variables: { after: cursor } },
    });
    expect((await client.nextMessage()).payload).toEqual({ data: { events: { payload: { n: 1 } } } });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "t", payload: { n: 2 }) { id } }' });
    expect((await client.nextMessage()).payload).toEqual({ data: { events: { payload: { n: 2 } } } });
  });

  it('gives a topic the caller may not read a cursor that reveals nothing', async () => {
    const server = await startTestServer({ ...env(), JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ roles: ['admin'] });
    const reader = await signHs256({ permissions: [] });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "secret", payload: {}) { id } }' }, { authorization: `Bearer ${admin}` });
    const first = await postGraphQL(server.graphqlUrl, { query: '{ topicCursor(topic: "secret") }' }, { authorization: `Bearer ${reader}` });
    const second = await postGraphQL(server.graphqlUrl, { query: '{ topicCursor(topic: "secret") }' }, { authorization: `Bearer ${reader}` });
    const real = await postGraphQL(server.graphqlUrl, { query: '{ topicCursor(topic: "secret") }' }, { authorization: `Bearer ${admin}` });
    expect(first.body.errors).toBeUndefined();
    expect(first.body.data?.['topicCursor']).not.toBe(real.body.data?.['topicCursor']);
    // Fresh every time: not a stable identifier of the topic either.
    expect(first.body.data?.['topicCursor']).not.toBe(second.body.data?.['topicCursor']);
  });
});
