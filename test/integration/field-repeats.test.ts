/**
 * A field selected more than MAX_FIELD_REPEATS times in one selection set — directly, through
 * inline fragments or through fragment spreads — is QUERY_TOO_COMPLEX before graphql-js's own
 * validation compares the repeats pairwise (495 of them cost 171 ms of one shared event loop, from
 * any caller with a token). Up to the bound, a query is answered as usual; over HTTP and over the
 * socket alike.
 */
import { describe, expect, it } from 'vitest';
import { MAX_FIELD_REPEATS } from '../../src/server/field-repeats.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const repeated = (times: number, selection = 'viewer { subject } ') => selection.repeat(times);

describe('a field repeated in one selection set', () => {
  it(`is answered up to ${MAX_FIELD_REPEATS} times and refused past it, fragments counted in`, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const token = await signHs256({ sub: 'repeater', tenant: 'a', permissions: [] });
    const post = async (query: string) => (await postGraphQL(server.graphqlUrl, { query }, { authorization: `Bearer ${token}` })).body;

    expect(await post(`{ ${repeated(MAX_FIELD_REPEATS)} }`)).toEqual({ data: { viewer: { subject: 'repeater' } } });

    const refusals = [
      `{ ${repeated(MAX_FIELD_REPEATS + 1)} }`,
      // Inline fragments add to their parent's selections.
      `{ ${repeated(MAX_FIELD_REPEATS)} ... on Query { viewer { subject } } }`,
      // A fragment spread many times: each spread brings its selections in again.
      `{ ${repeated(MAX_FIELD_REPEATS / 2 + 1, '...Twice ')} } fragment Twice on Query { viewer { subject } viewer { subject } }`,
      // Nested: counted in the selection set it is in.
      `{ viewer { ${repeated(MAX_FIELD_REPEATS + 1, 'subject ')} } }`,
    ];
    for (const query of refusals) {
      const body = await post(query);
      expect(body.data, query.slice(0, 60)).toBeUndefined();
      expect(body.errors?.[0]?.extensions, query.slice(0, 60)).toMatchObject({ code: 'QUERY_TOO_COMPLEX' });
      expect(body.errors?.[0]?.message).toMatch(/^Field "(viewer|subject)" is selected more than \d+ times in one selection set/);
    }

    const socket = await openAcknowledgedSocket(server.wsUrl, token);
    socket.send({ id: 'q', type: 'subscribe', payload: { query: `{ ${repeated(MAX_FIELD_REPEATS + 1)} }` } });
    const refused = await socket.waitForMessage((message) => message.id === 'q');
    expect(refused).toMatchObject({ type: 'error', payload: [{ extensions: { code: 'QUERY_TOO_COMPLEX' } }] });
  });
});
