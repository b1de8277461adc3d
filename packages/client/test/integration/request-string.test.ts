/**
 * `client.request` with the operation as a string (what a first try types), against a real
 * server: sent as it is, answered as with a typed document; a string the server cannot parse is
 * its refusal (GRAPHQL_PARSE_FAILED), not a client crash ("Invalid AST Node").
 */
import { describe, expect, expectTypeOf, it, onTestFinished } from 'vitest';
import { createClient, documents, TributaryRequestError } from '@tributary/client';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { startTestServer } from '../../../../test/helpers/tributary.ts';

describe('client.request with a string', () => {
  it('runs a mutation and a query given as strings, with and without variables, and reports a syntax error as the server’s refusal', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const token = await signHs256({ sub: 'editor', tenant: 'a', permissions: ['sync.boards.read', 'sync.boards.write', 'orders.read'] });
    const client = createClient({ url: server.wsUrl, getToken: () => token });
    onTestFinished(() => client.close());

    const created = await client.request('mutation { createDocument(service: "boards", id: "s1", data: { title: "Sprint" }) { id revision data } }', {});
    expect(created).toEqual({ createDocument: { id: 's1', revision: 1, data: { title: 'Sprint' } } });

    const read = await client.request<{ document: { revision: number; data: unknown } | null }>('query($id: ID!) { document(service: "boards", id: $id) { revision data } }', { id: 's1' });
    expect(read.document).toEqual({ revision: 1, data: { title: 'Sprint' } });

    // No variables at all.
    await expect(client.request('query { __typename }')).resolves.toEqual({ __typename: 'Query' });

    const refused = await client.request('mutation { createDocument(service: ') .then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(TributaryRequestError);
    expect((refused as TributaryRequestError).code).toBe('GRAPHQL_PARSE_FAILED');

    // Types: a string's result is `unknown` unless named; a typed document's is its own.
    expectTypeOf(() => client.request('query { __typename }')).returns.resolves.toEqualTypeOf<unknown>();
    expectTypeOf(() => client.request<{ __typename: string }>('query { __typename }')).returns.resolves.toEqualTypeOf<{ __typename: string }>();
    expectTypeOf(() => client.request(documents.TributaryTopicCursorDocument, { topic: 'x' })).returns.resolves.toEqualTypeOf<documents.TributaryTopicCursorQuery>();
    // A typed document goes on working as before.
    await expect(client.request(documents.TributaryTopicCursorDocument, { topic: 'orders.x' })).resolves.toMatchObject({ topicCursor: expect.any(String) as unknown });
  });
});
