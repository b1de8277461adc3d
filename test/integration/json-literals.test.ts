/**
 * JSON written in the document: an enum value (a bare word meant as a string), a variable the
 * request left out, a number JSON cannot carry are refused, over HTTP and WebSocket, and change
 * nothing. Before, graphql-scalars' JSON scalar made the first two `undefined`: a merge patch
 * `{ keep: $v }` or `{ status: ACTIVE }` deleted the key, `createDocument(data: { a: ENUMV })`
 * stored the document without it, and `{ list: [1, $v] }` published a JSON Patch without its
 * value; `1e400` was stored as null. Literals that are JSON, and variables, work as before.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogs, postGraphQL, startTestServer, type GraphQLResponseBody, type LogLine, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const READ = 'query($id: ID!) { document(service: "board", id: $id) { revision data } }';
/** A merge with `patch` written in the document; it declares the variables it uses, of `$v` and `$w`. */
const merge = (id: string, patch: string) => {
  const declared = ['$v', '$w'].filter((name) => patch.includes(name)).map((name) => `${name}: JSON${patch === name ? '!' : ''}`);
  return `mutation${declared.length > 0 ? `(${declared.join(', ')})` : ''} { mergeDocument(service: "board", id: "${id}", patch: ${patch}) { revision data } }`;
};
const ORIGINAL = { keep: 'me', list: [1, 2], status: 'x' };

describe('JSON literals in the document', () => {
  let server: TestServer;
  let logs: { readonly lines: readonly LogLine[] };
  let documents = 0;
  beforeAll(async () => {
    const sink = captureLogs();
    logs = sink;
    server = await startTestServer({ LOG_LEVEL: 'warn' }, { autoDispose: false, logDestination: sink });
    return () => server.dispose();
  });
  const gql = (query: string, variables: Record<string, unknown> = {}) => postGraphQL(server.graphqlUrl, { query, variables });
  /** A document of its own per test, holding ORIGINAL at revision 1. */
  async function freshDocument(): Promise<string> {
    const id = `d${(documents += 1)}`;
    const created = await gql('mutation($id: ID!, $d: JSON!) { createDocument(service: "board", id: $id, data: $d) { revision } }', { id, d: ORIGINAL });
    expect(created.body).toEqual({ data: { createDocument: { revision: 1 } } });
    return id;
  }
  const read = async (id: string) => (await gql(READ, { id })).body.data?.['document'];
  const firstError = (body: GraphQLResponseBody) => body.errors?.[0];

  it('refuses an enum value in a merge patch, a new document, a publish payload and a broadcast with BAD_USER_INPUT (400), changing nothing', async () => {
    const id = await freshDocument();
    const refused = [
      [`mutation { mergeDocument(service: "board", id: "${id}", patch: { status: ACTIVE }) { revision } }`, 'An enum value `ACTIVE` at /status is not JSON: quote it as a string ("ACTIVE")'],
      ['mutation { createDocument(service: "board", id: "new", data: { a: ENUMV, b: 1 }) { revision } }', 'An enum value `ENUMV` at /a is not JSON: quote it as a string ("ENUMV")'],
      ['mutation { publish(topic: "t.json", payload: { state: [OPEN] }) { id } }', 'An enum value `OPEN` at /state/0 is not JSON: quote it as a string ("OPEN")'],
      ['mutation { broadcast(channel: "lobby", event: "hello", data: { mood: HAPPY }) }', 'An enum value `HAPPY` at /mood is not JSON: quote it as a string ("HAPPY")'],
    ] as const;
    for (const [query, message] of refused) {
      const answer = await gql(query);
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([expect.objectContaining({ message, extensions: { code: 'BAD_USER_INPUT' } })]);
    }
    expect(await read(id)).toEqual({ revision: 1, data: ORIGINAL });
    expect(await read('new')).toBeNull();
  });

  it('refuses a number literal JSON cannot carry, and an integer past 2^53 - 1, with BAD_USER_INPUT (400)', async () => {
    const id = await freshDocument();
    for (const [literal, message] of [
      ['{ f: 1e400 }', 'The number 1e400 at /f is too large for JSON (at most about 1.8e308)'],
      ['{ big: 12345678901234567890 }', 'The integer 12345678901234567890 at /big is beyond ±9007199254740991 and cannot be kept exactly: send it as a string'],
    ]) {
      const answer = await gql(`mutation { mergeDocument(service: "board", id: "${id}", patch: ${literal}) { revision } }`);
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([expect.objectContaining({ message, extensions: { code: 'BAD_USER_INPUT' } })]);
    }
    expect(await read(id)).toEqual({ revision: 1, data: ORIGINAL });
  });

  it('refuses a variable the request did not send, in an object or a list, and leaves the document as it was', async () => {
    const id = await freshDocument();
    for (const [patch, printed] of [['{ keep: $v }', '{keep: $v}'], ['{ list: [1, $v] }', '{list: [1, $v]}']] as const) {
      const answer = await gql(merge(id, patch), {});
      expect(answer.body.data).toBeNull();
      // graphql-js runs the check (the scalar's) when the operation executes, and answers
      // `Argument "patch" has invalid value …` at the argument's value: the caller's mistake.
      expect(firstError(answer.body)).toMatchObject({ message: `Argument "patch" has invalid value ${printed}.`, extensions: { code: 'BAD_USER_INPUT' } });
    }
    expect(await read(id)).toEqual({ revision: 1, data: ORIGINAL });
  });

  it('refuses in a variable a number JSON.parse made Infinity (1e400) with BAD_USER_INPUT (400) naming the variable', async () => {
    const id = await freshDocument();
    const response = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      // Written out: JSON.stringify would send 1e400 as null.
      body: `{"query":${JSON.stringify(merge(id, '$v'))},"variables":{"v":{"f":1e400}}}`,
    });
    const body = (await response.json()) as GraphQLResponseBody;
    expect(response.status).toBe(400);
    expect(body.errors).toEqual([
      expect.objectContaining({
        message: 'Variable "$v" got invalid value { f: Infinity }; The number Infinity at /f is not one JSON can carry (too large for a double, or not a number)',
        extensions: { code: 'BAD_USER_INPUT' },
      }),
    ]);
    expect(await read(id)).toEqual({ revision: 1, data: ORIGINAL });
  });

  it('takes literals that are JSON, and variables inside them and in their place, as before', async () => {
    const logged = logs.lines.length;
    const id = await freshDocument();
    const literal = await gql(merge(id, '{ status: "ACTIVE", list: [1, [2, { three: 3.5 }], null, true, false, -7], nested: { a: { b: "c" } }, keep: null }'));
    expect(literal.body.data).toEqual({
      mergeDocument: { revision: 2, data: { status: 'ACTIVE', list: [1, [2, { three: 3.5 }], null, true, false, -7], nested: { a: { b: 'c' } } } },
    });
    // A variable sent as null stays null: in a merge patch, the key goes.
    const variables = await gql(merge(id, '{ nested: $v, list: [$w, 0] }'), { v: null, w: { x: ['y'] } });
    expect(variables.body.data).toEqual({ mergeDocument: { revision: 3, data: { status: 'ACTIVE', list: [{ x: ['y'] }, 0] } } });
    const whole = await gql(merge(id, '$w'), { w: { status: 'done' } });
    expect(whole.body.data).toEqual({ mergeDocument: { revision: 4, data: { status: 'done', list: [{ x: ['y'] }, 0] } } });
    const published = await gql('mutation { publish(topic: "t.json", payload: { state: "OPEN", n: [1, 2.5, null] }) { payload } }');
    expect(published.body.data).toEqual({ publish: { payload: { state: 'OPEN', n: [1, 2.5, null] } } });
    expect(logs.lines.slice(logged).filter((line) => line.level >= 50)).toEqual([]);
  });

  it('answers an enum literal over WebSocket with an `error` message, before anything runs', async () => {
    const id = await freshDocument();
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'enum', type: 'subscribe', payload: { query: `mutation { mergeDocument(service: "board", id: "${id}", patch: { status: ACTIVE }) { revision } }` } });
    expect(await client.nextMessage()).toEqual({
      id: 'enum',
      type: 'error',
      payload: [expect.objectContaining({ message: 'An enum value `ACTIVE` at /status is not JSON: quote it as a string ("ACTIVE")', extensions: { code: 'BAD_USER_INPUT' } })],
    });
    client.send({ id: 'missing', type: 'subscribe', payload: { query: merge(id, '{ keep: $v }'), variables: {} } });
    expect(await client.nextMessage()).toMatchObject({ id: 'missing', type: 'next', payload: { data: null } });
    expect(await client.nextMessage()).toEqual({ id: 'missing', type: 'complete' });
    expect(await read(id)).toEqual({ revision: 1, data: ORIGINAL });
  });
});
