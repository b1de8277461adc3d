import { describe, expect, it } from 'vitest';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe.each(['memory', 'redis'])('events smoke (%s)', (mode) => {
  it('delivers a published event and resumes after a cursor', async () => {
    const server = await startTestServer(mode === 'redis' ? { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() } : {});
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: '1', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders") { id topic type payload cursor source } }' } });
    await waitFor(() => server.stats().subscribers === 1);
    const published = await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", payload: { n: 1 }) { id cursor } }' });
    expect(published.body.errors).toBeUndefined();
    const message = await client.nextMessage();
    expect(message).toMatchObject({ id: '1', type: 'next', payload: { data: { events: { topic: 'orders', type: 'message', payload: { n: 1 }, source: 'SOCKET' } } } });
    const first = (message.payload as { data: { events: { cursor: string } } }).data.events.cursor;
    await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", payload: { n: 2 }) { id } }' });
    await postGraphQL(server.graphqlUrl, { query: 'mutation { publish(topic: "orders", payload: { n: 3 }) { id } }' });
    const resumed = await openAcknowledgedSocket(server.wsUrl);
    resumed.send({ id: 'r', type: 'subscribe', payload: { query: 'subscription($after: String) { events(topic: "orders", after: $after) { payload } }', variables: { after: first } } });
    expect((await resumed.nextMessage()).payload).toEqual({ data: { events: { payload: { n: 2 } } } });
    expect((await resumed.nextMessage()).payload).toEqual({ data: { events: { payload: { n: 3 } } } });
  });
});
