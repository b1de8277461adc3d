/**
 * The direct path for plain GraphQL POSTs (`src/server/graphql-post.ts`) answers exactly as yoga
 * does. Every request is sent twice: with a Content-Length (the direct path may take it) and
 * chunked (no length: always yoga's), and the two answers — status, content type, body — must be
 * the same; `tributary_graphql_direct_posts_total` tells which requests the direct path served.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  /** Every header but those of the connection and framing. */
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

const FRAMING = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/** Event ids and times differ between two publishes: the rest of the answer must not. */
function comparable(text: string): unknown {
  const normalized = text.replace(/"evt_[A-Za-z0-9_-]+"/g, '"evt"').replace(/"\d{4}-\d\d-\d\dT[\d:.]+Z"/g, '"time"');
  try {
    return JSON.parse(normalized);
  } catch {
    // Not JSON (an event stream): compared as it is.
    return normalized;
  }
}

async function send(url: string, body: string, headers: Record<string, string>, chunked: boolean): Promise<Answer> {
  const bytes = new TextEncoder().encode(body);
  // A stream has no length: fetch sends it chunked.
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  const response = await fetch(url, { method: 'POST', headers, ...(chunked ? { duplex: 'half', body: stream } : { body: bytes }) });
  const kept = [...response.headers].filter(([name]) => !FRAMING.has(name));
  return { status: response.status, contentType: response.headers.get('content-type'), headers: Object.fromEntries(kept), body: comparable(await response.text()) };
}

describe('plain GraphQL POSTs on the direct path', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { autoDispose: false, embedded: true });
    token = await signHs256({ permissions: ['orders.publish'] });
    return () => server.dispose();
  });

  async function directPosts(): Promise<number> {
    const text = await (await fetch(server.graphqlUrl.replace('/graphql', '/metrics'))).text();
    return Number(/^tributary_graphql_direct_posts_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
  }

  /** Sends `body` both ways and returns the answer once both agree, with how many the direct path served. */
  async function bothWays(body: unknown, headers: Record<string, string> = {}): Promise<Answer & { direct: number }> {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const all = { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers };
    const before = await directPosts();
    const withLength = await send(server.graphqlUrl, text, all, false);
    const between = await directPosts();
    const chunked = await send(server.graphqlUrl, text, all, true);
    expect(await directPosts()).toBe(between);
    expect(withLength).toEqual(chunked);
    return { ...withLength, direct: between - before };
  }

  const PUBLISH = 'mutation($topic: String!) { publish(topic: $topic, payload: { n: 1 }) { id topic type } }';

  it('serves a query and a mutation, as yoga would, under every Accept its JSON answer serves', async () => {
    for (const accept of [undefined, '*/*', 'application/json', 'application/graphql-response+json', 'application/json, application/graphql-response+json', 'application/graphql-response+json, application/json']) {
      const headers: Record<string, string> = accept === undefined ? {} : { accept };
      const viewer = await bothWays({ query: '{ viewer { subject tenant } }' }, headers);
      expect(viewer).toMatchObject({ status: 200, direct: 1, body: { data: { viewer: { subject: 'user-1', tenant: 'tenant-a' } } } });
      const published = await bothWays({ query: PUBLISH, variables: { topic: 'orders.created' } }, headers);
      expect(published).toMatchObject({ status: 200, direct: 1, body: { data: { publish: { id: 'evt', topic: 'orders.created', type: 'message' } } } });
      expect(published.contentType).toBe(accept?.startsWith('application/graphql-response+json') === true ? 'application/graphql-response+json; charset=utf-8' : 'application/json; charset=utf-8');
    }
  });

  it('answers errors raised while executing as yoga does: a refused publish, a variable of the wrong type', async () => {
    for (const accept of ['application/json', 'application/graphql-response+json']) {
      const forbidden = await bothWays({ query: PUBLISH, variables: { topic: 'billing.paid' } }, { accept });
      expect(forbidden).toMatchObject({ status: 403, direct: 1, body: { data: null, errors: [{ extensions: { code: 'FORBIDDEN' } }] } });
      const wrongType = await bothWays({ query: PUBLISH, variables: { topic: 5 } }, { accept });
      expect(wrongType).toMatchObject({ status: 400, direct: 1, body: { errors: [{ extensions: { code: 'BAD_USER_INPUT' } }] } });
    }
  });

  it('leaves to yoga what would not execute, and yoga answers it', async () => {
    // With the status yoga gives each (JSON answers: a request error is 200 unless it says otherwise).
    const cases: [unknown, Record<string, string>, number][] = [
      [{ query: '{ viewer { nope } }' }, {}, 200],
      [{ query: '{ viewer {' }, {}, 400],
      [{ query: 'subscription { events(topic: "orders.created") { id } }' }, {}, 200],
      [{ query: '{ viewer { subject } }', extra: 1 }, {}, 400],
      [{ query: '{ viewer { subject } }', variables: [1] }, {}, 400],
      [{ query: '' }, {}, 200],
      ['{"query": ', {}, 400],
      [[{ query: '{ viewer { subject } }' }], {}, 400],
      [{ query: '{ viewer { subject } }' }, { authorization: 'Bearer not-a-token' }, 401],
      [{ query: '{ viewer { subject } }' }, { accept: 'text/event-stream' }, 200],
      [{ query: '{ viewer { subject } }' }, { 'content-type': 'application/graphql+json' }, 200],
    ];
    const answers = [];
    for (const [body, headers] of cases) {
      const answer = await bothWays(body, headers);
      answers.push({ body, status: answer.status, direct: answer.direct });
    }
    expect(answers).toEqual(cases.map(([body, , status]) => ({ body, status, direct: 0 })));
  });

  it('forgets a request whose client goes away before its whole body arrived, and serves the next', async () => {
    const { port } = new URL(server.graphqlUrl);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":');
    const closed = once(socket, 'close');
    socket.destroy();
    await closed;
    const answer = await bothWays({ query: '{ viewer { subject } }' });
    expect(answer).toMatchObject({ status: 200, direct: 1, body: { data: { viewer: { subject: 'user-1' } } } });
  });

  it('leaves browser requests (an Origin) to yoga, which adds the CORS answer', async () => {
    const answer = await bothWays({ query: '{ viewer { subject } }' }, { origin: 'http://example.test' });
    expect(answer).toMatchObject({ status: 200, direct: 0 });
  });
});
