/**
 * Document writes under the per-subject limits `publish` has: each create, replace, merge and
 * delete counts in PUBLISH_RATE_PER_SECOND, and a create of a new document — a new topic stream
 * (`sync.{service}.doc.{id}`, and `sync.{service}.created` for a service's first) — in
 * TOPIC_NEW_STREAMS_PER_MINUTE. A review filled Redis from one tenant: 700 creates went through
 * where 700 `topicCursor`s were refused past 600, each leaving a log stream behind.
 *
 * In both pipeline modes: the embedded one (memory log, embedded database) and Redis (the cache
 * in sync durability), where a refused create must leave no key behind. Counts only, never
 * timing: the per-second window may restart while a test sends, so bursts of four times the limit
 * go at once, burst after burst until one is refused.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MODES, metricValue, type PipelineMode } from '../helpers/events.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';

const REFUSALS = 'tributary_subject_rate_limited_total';
/** Bursts sent at most before a refusal must have come. */
const BURSTS = 10;

const CREATE = 'mutation($s: String!, $id: ID, $d: JSON!) { createDocument(service: $s, id: $id, data: $d) { id revision } }';
const REPLACE = 'mutation($s: String!, $id: ID!, $d: JSON!) { replaceDocument(service: $s, id: $id, data: $d) { revision } }';
const MERGE = 'mutation($s: String!, $id: ID!, $d: JSON!) { mergeDocument(service: $s, id: $id, patch: $d) { revision } }';
const DELETE = 'mutation($s: String!, $id: ID!) { deleteDocument(service: $s, id: $id) { revision } }';
const GET = 'query($s: String!, $id: ID!) { document(service: $s, id: $id) { revision data } }';

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
  onTestFinished(async () => void (await redis.quit()));
  return { server, redisKeys: () => redis.keys(`${prefix}*`) };
}

type Call = (query: string, variables: Record<string, unknown>) => Promise<{ status: number; body: GraphQLResponseBody }>;

function as(server: TestServer, token: string): Call {
  return (query, variables) => postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` });
}

const writer = (sub: string) => signHs256({ sub, permissions: ['sync.read', 'sync.write'] });

/** The refusal, checked: RATE_LIMITED (HTTP 429) with a wait of 1 ms to `maxWaitMs`. */
function expectRateLimited(answer: { status: number; body: GraphQLResponseBody }, maxWaitMs: number): void {
  expect(answer.status).toBe(429);
  const extensions = answer.body.errors?.[0]?.extensions;
  expect(extensions?.['code']).toBe('RATE_LIMITED');
  expect(extensions?.['retryAfterMs']).toBeGreaterThanOrEqual(1);
  expect(extensions?.['retryAfterMs']).toBeLessThanOrEqual(maxWaitMs);
}

/** Bursts of 20 calls at once (`call(n)`, n counting on across bursts) until one is refused; every answer. */
async function burstUntilRefused(call: (n: number) => Promise<{ status: number; body: GraphQLResponseBody }>) {
  const answers: { status: number; body: GraphQLResponseBody }[] = [];
  for (let burst = 0; burst < BURSTS && !answers.some((answer) => answer.status === 429); burst += 1) {
    answers.push(...(await Promise.all(Array.from({ length: 20 }, (_unused, n) => call(burst * 20 + n)))));
  }
  return { refused: answers.filter((answer) => answer.status === 429), made: answers.filter((answer) => answer.body.errors === undefined) };
}

describe.each(MODES)('document writes under the per-subject limits (%s)', (mode) => {
  it('counts creates, replaces, merges and deletes in PUBLISH_RATE_PER_SECOND: RATE_LIMITED with retryAfterMs, nothing written; other subjects unaffected', { timeout: 60_000 }, async () => {
    const { server } = await start(mode, { PUBLISH_RATE_PER_SECOND: '5' });
    const flooder = as(server, await writer('flooder'));
    const setUp = as(server, await writer('set-up'));
    expect((await setUp(CREATE, { s: 'notes', id: 'shared', d: { n: 0 } })).body.errors).toBeUndefined();

    let refusals = 0;
    const created = await burstUntilRefused((n) => flooder(CREATE, { s: 'notes', id: `c${n}`, d: { n } }));
    const replaced = await burstUntilRefused((n) => flooder(REPLACE, { s: 'notes', id: 'shared', d: { n } }));
    const merged = await burstUntilRefused((n) => flooder(MERGE, { s: 'notes', id: 'shared', d: { n } }));
    // Deletes of documents that do not exist: NOT_FOUND once admitted, RATE_LIMITED past the limit.
    const deleted = await burstUntilRefused((n) => flooder(DELETE, { s: 'notes', id: `missing${n}` }));
    for (const { refused } of [created, replaced, merged, deleted]) {
      // Without the limit none is ever refused: the loop ends after its bursts and this fails.
      expect(refused.length).toBeGreaterThan(0);
      for (const answer of refused) expectRateLimited(answer, 1000);
      refusals += refused.length;
    }

    // A refused write wrote nothing: the document moved once per write answered.
    const shared = await setUp(GET, { s: 'notes', id: 'shared' });
    expect((shared.body.data?.['document'] as { revision: number }).revision).toBe(1 + replaced.made.length + merged.made.length);
    // Another subject of the same tenant has a budget of its own.
    expect((await setUp(MERGE, { s: 'notes', id: 'shared', d: { other: true } })).body.errors).toBeUndefined();
    expect(await metricValue(server, REFUSALS)).toBe(refusals);
  });

  it('counts a create of a new document in TOPIC_NEW_STREAMS_PER_MINUTE, leaves nothing for a refused one, and never limits writes to documents that exist', { timeout: 60_000 }, async () => {
    const { server, redisKeys } = await start(mode, { TOPIC_NEW_STREAMS_PER_MINUTE: '3' });
    const flooder = as(server, await writer('flooder'));
    const setUp = as(server, await writer('set-up'));
    // The service's topic `sync.notes.created` made by another subject: it costs the flooder nothing.
    expect((await setUp(CREATE, { s: 'notes', id: 'first', d: {} })).body.errors).toBeUndefined();

    for (const n of [1, 2, 3]) expect((await flooder(CREATE, { s: 'notes', id: `n${n}`, d: { n } })).body.errors).toBeUndefined();
    const refused = await flooder(CREATE, { s: 'notes', id: 'n4', d: { n: 4 } });
    expectRateLimited(refused, 60_000);
    // So is a create that lets the server choose the id.
    expectRateLimited(await flooder(CREATE, { s: 'notes', d: { n: 5 } }), 60_000);
    expect((await setUp(GET, { s: 'notes', id: 'n4' })).body.data?.['document']).toBeNull();

    // Documents that exist stay writable over the budget, by their creator too.
    expect((await flooder(MERGE, { s: 'notes', id: 'n1', d: { more: true } })).body.data?.['mergeDocument']).toEqual({ revision: 2 });
    expect((await flooder(CREATE, { s: 'notes', id: 'first', d: {} })).body.errors?.[0]?.extensions?.['code']).toBe('CONFLICT');
    // A new document of another subject has a budget of its own.
    expect((await setUp(CREATE, { s: 'notes', id: 'n6', d: {} })).body.errors).toBeUndefined();
    expect(await metricValue(server, REFUSALS)).toBe(2);
    if (redisKeys) {
      const keys = await redisKeys();
      expect(keys.filter((key) => key.includes('n6'))).not.toEqual([]);
      expect(keys.filter((key) => key.includes('n4'))).toEqual([]);
    }
  });

  it("counts the first document of a service twice: the document's topic and the service's", { timeout: 60_000 }, async () => {
    const { server } = await start(mode, { TOPIC_NEW_STREAMS_PER_MINUTE: '3' });
    const flooder = as(server, await writer('flooder'));
    // `sync.a.created` and `sync.a.doc.x`: two of three.
    expect((await flooder(CREATE, { s: 'a', id: 'x', d: {} })).body.errors).toBeUndefined();
    expectRateLimited(await flooder(CREATE, { s: 'b', id: 'x', d: {} }), 60_000);
    expect((await flooder(GET, { s: 'b', id: 'x' })).body.data?.['document']).toBeNull();
  });
});
