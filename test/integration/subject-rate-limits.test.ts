/**
 * Per-subject rate limits: PUBLISH_RATE_PER_SECOND (publishes and broadcasts) and
 * TOPIC_NEW_STREAMS_PER_MINUTE (topic streams created by `topicCursor` and `events`), in both
 * pipeline modes — the embedded one (memory log, embedded database) and Redis, where a refused
 * name must leave no key behind.
 *
 * Counts only, never timing: the per-second window may restart while a test sends, so the
 * publish tests send bursts of four times the limit at once, burst after burst until one is
 * refused (a machine slow enough to spread every burst over four windows would need many in a
 * row); the new-stream tests use the per-minute figure and exact counts.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { MODES, metricValue, type PipelineMode } from '../helpers/events.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const REFUSALS = 'tributary_subject_rate_limited_total';
/** Bursts sent at most before a refusal must have come. */
const BURSTS = 10;

interface Started {
  readonly server: TestServer;
  /** Keys of the server's Redis under its prefix; undefined in the embedded mode. */
  readonly redisKeys: (() => Promise<string[]>) | undefined;
}

async function start(mode: PipelineMode, env: Record<string, string>): Promise<Started> {
  if (mode === 'memory') return { server: await startTestServer({ JWT_SECRET: TEST_SECRET, ...env }, { embedded: true }), redisKeys: undefined };
  const prefix = uniquePrefix();
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, ...env });
  const redis = new Redis(testRedisUrl());
  onTestFinished(async () => {
    await redis.quit();
  });
  return { server, redisKeys: () => redis.keys(`${prefix}*`) };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function publish(server: TestServer, token: string, n: number) {
  return postGraphQL(server.graphqlUrl, { query: 'mutation($payload: JSON!) { publish(topic: "orders.placed", payload: $payload) { id } }', variables: { payload: { n } } }, bearer(token));
}

function topicCursor(server: TestServer, token: string, topic: string) {
  return postGraphQL(server.graphqlUrl, { query: 'query($topic: String!) { topicCursor(topic: $topic) }', variables: { topic } }, bearer(token));
}

/** The refusal's error, checked: RATE_LIMITED with a wait of 1 ms to `maxWaitMs`. */
function expectRateLimited(body: GraphQLResponseBody | undefined, maxWaitMs: number): void {
  const extensions = body?.errors?.[0]?.extensions;
  expect(extensions?.['code']).toBe('RATE_LIMITED');
  expect(extensions?.['retryAfterMs']).toBeGreaterThanOrEqual(1);
  expect(extensions?.['retryAfterMs']).toBeLessThanOrEqual(maxWaitMs);
}

/** Sends one operation over the socket and returns its first `next` payload (or the `error`). */
async function operate(client: RawSocket, id: string, query: string): Promise<GraphQLResponseBody> {
  client.send({ id, type: 'subscribe', payload: { query } });
  const message = await client.waitForMessage((received) => received.id === id && (received.type === 'next' || received.type === 'error'));
  return message.type === 'next' ? (message.payload as GraphQLResponseBody) : { errors: message.payload as GraphQLResponseBody['errors'] };
}

/** Sends `count` operations at once (ids `prefix0`…), then returns each one's first `next` payload (or `error`). */
async function operateAll(client: RawSocket, prefix: string, count: number, query: string): Promise<GraphQLResponseBody[]> {
  const ids = Array.from({ length: count }, (_unused, n) => `${prefix}${n}`);
  for (const id of ids) client.send({ id, type: 'subscribe', payload: { query } });
  const answers = new Map<string, GraphQLResponseBody>();
  while (answers.size < count) {
    const message = await client.waitForMessage((received) => ids.includes(String(received.id)) && (received.type === 'next' || received.type === 'error'));
    answers.set(String(message.id), message.type === 'next' ? (message.payload as GraphQLResponseBody) : { errors: message.payload as GraphQLResponseBody['errors'] });
  }
  return ids.map((id) => answers.get(id)!);
}

describe.each(MODES)('per-subject rate limits (%s)', (mode) => {
  it("refuses a subject's publishes past PUBLISH_RATE_PER_SECOND with RATE_LIMITED, 429 and retryAfterMs, admins too, and leaves other subjects alone", async () => {
    const { server } = await start(mode, { PUBLISH_RATE_PER_SECOND: '5' });
    const backend = await signHs256({ sub: 'backend', roles: ['admin'] });
    const other = await signHs256({ sub: 'other', permissions: ['orders.publish'] });

    const answers: Awaited<ReturnType<typeof publish>>[] = [];
    // Bursts of 20 at once against a limit of 5 a second, until one is refused (without the
    // limit, none ever is: the loop ends after its bursts and the expectation below fails).
    for (let burst = 0; burst < BURSTS && !answers.some((answer) => answer.body.errors !== undefined); burst += 1) {
      answers.push(...(await Promise.all(Array.from({ length: 20 }, (_unused, n) => publish(server, backend, burst * 20 + n)))));
    }
    const refused = answers.filter((answer) => answer.body.errors !== undefined);
    expect(refused.length).toBeGreaterThan(0);
    for (const answer of refused) {
      expect(answer.status).toBe(429);
      expectRateLimited(answer.body, 1000);
    }
    // Another subject of the same tenant has a budget of its own.
    expect((await publish(server, other, 0)).body.errors).toBeUndefined();
    expect(await metricValue(server, REFUSALS)).toBe(refused.length);
  });

  it('refuses broadcasts past the same limit, over the WebSocket too', async () => {
    const { server } = await start(mode, { PUBLISH_RATE_PER_SECOND: '5' });
    const token = await signHs256({ sub: 'chatty', permissions: ['room.broadcast'] });
    const client = await openAcknowledgedSocket(server.wsUrl, token);

    const answers: GraphQLResponseBody[] = [];
    for (let burst = 0; burst < BURSTS && !answers.some((answer) => answer.errors !== undefined); burst += 1) {
      answers.push(...(await operateAll(client, `b${burst}-`, 20, 'mutation { broadcast(channel: "room", event: "typing", data: { n: 1 }) }')));
    }
    const refused = answers.filter((answer) => answer.errors !== undefined);
    expect(refused.length).toBeGreaterThan(0);
    for (const answer of refused) expectRateLimited(answer, 1000);
    expect(answers.filter((answer) => answer.data?.['broadcast'] === true).length).toBe(answers.length - refused.length);
  });

  it('creates at most TOPIC_NEW_STREAMS_PER_MINUTE new topic streams per subject, leaves nothing for a refused one, and never limits topics that exist', async () => {
    const { server, redisKeys } = await start(mode, { TOPIC_NEW_STREAMS_PER_MINUTE: '3' });
    const reader = await signHs256({ sub: 'reader', permissions: ['flood.read', 'orders.read'] });
    const neighbour = await signHs256({ sub: 'neighbour', permissions: ['flood.read'] });
    const publisher = await signHs256({ sub: 'publisher', permissions: ['orders.publish'] });
    // A topic made by a publish, not by this reader: opening it later costs the reader nothing.
    expect((await publish(server, publisher, 1)).body.errors).toBeUndefined();

    for (const n of [1, 2, 3]) expect((await topicCursor(server, reader, `flood.${n}`)).body.data?.['topicCursor']).toEqual(expect.any(String));
    const refusedCursor = await topicCursor(server, reader, 'flood.4');
    expect(refusedCursor.status).toBe(429);
    expectRateLimited(refusedCursor.body, 60_000);
    // Said over HTTP too, in whole seconds.
    const again = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(reader) },
      body: JSON.stringify({ query: '{ topicCursor(topic: "flood.4") }' }),
    });
    expect(again.status).toBe(429);
    expect(Number(again.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(again.headers.get('retry-after'))).toBeLessThanOrEqual(60);

    // Topics that have a history stay open to the subject over its budget.
    expect((await topicCursor(server, reader, 'flood.1')).body.errors).toBeUndefined();
    expect((await topicCursor(server, reader, 'orders.placed')).body.errors).toBeUndefined();
    const client = await openAcknowledgedSocket(server.wsUrl, reader);
    const refusedSubscription = await operate(client, 'new', 'subscription { events(topic: "flood.5") { id } }');
    expectRateLimited(refusedSubscription, 60_000);
    client.send({ id: 'known', type: 'subscribe', payload: { query: 'subscription { events(topic: "orders.placed") { payload } }' } });
    await expect.poll(() => server.stats().subscribers).toBe(1);
    expect((await publish(server, publisher, 2)).body.errors).toBeUndefined();
    expect(await client.waitForMessage((message) => message.id === 'known')).toMatchObject({ type: 'next', payload: { data: { events: { payload: { n: 2 } } } } });

    // Another subject has a budget of its own.
    expect((await topicCursor(server, neighbour, 'flood.6')).body.errors).toBeUndefined();
    expect(await metricValue(server, REFUSALS)).toBe(3);
    if (redisKeys) {
      const keys = await redisKeys();
      expect(keys.filter((key) => key.includes('flood.6'))).not.toEqual([]);
      expect(keys.filter((key) => key.includes('flood.4') || key.includes('flood.5'))).toEqual([]);
    }
  });
});

const logs: Record<PipelineMode, () => { log: EventLog; keys: () => Promise<string[]> }> = {
  memory: () => {
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: () => undefined });
    onTestFinished(() => log.close());
    return { log, keys: () => Promise.resolve([]) };
  },
  redis: () => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => {
      await redis.quit();
    });
    const keyPrefix = uniquePrefix();
    return { log: createRedisLog({ redis, keyPrefix, retention: { maxEvents: 100, maxAgeMs: 3_600_000 } }), keys: () => redis.keys(`${keyPrefix}*`) };
  },
};

describe.each(MODES)('the %s log asked before it creates a stream', (mode) => {
  const scope = { app: 'shop', env: 'prod', tenant: 'a' };

  it('asks only for a stream it would create, and creates nothing when refused', async () => {
    const { log, keys } = logs[mode]();
    const refuse = () => Promise.reject(new Error('no new streams'));
    await expect(log.head(streamOf(scope, 'fresh'), { beforeCreate: refuse })).rejects.toThrow('no new streams');
    expect(await keys()).toEqual([]);

    let asked = 0;
    const allow = () => {
      asked += 1;
      return Promise.resolve();
    };
    const start = await log.head(streamOf(scope, 'fresh'), { beforeCreate: allow });
    expect(asked).toBe(1);
    // Created now: the same head, without asking again, and a publish after it reads as its successor.
    expect(await log.head(streamOf(scope, 'fresh'), { beforeCreate: refuse })).toBe(start);
    const placed = await log.append(streamOf(scope, 'fresh'), { id: 'evt_1', topic: 'fresh', source: 'socket', type: 'message', payload: {}, metadata: { timestamp: Date.now(), scope } });
    expect(await log.readAfter(streamOf(scope, 'fresh'), start, 10)).toEqual([placed]);
    expect(await log.head(streamOf(scope, 'fresh'), { beforeCreate: refuse })).toBe(placed.cursor);
  });
});
