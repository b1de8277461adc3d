/**
 * A request without a valid token is refused before its document is read: nothing it sent is
 * parsed, cached or registered as a persisted query (an anonymous client cannot fill the parse
 * caches or push other callers' persisted queries out of the bounded store).
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('HTTP requests without a valid token', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { autoDispose: false });
    return () => server.dispose();
  });

  it('are refused with 401 UNAUTHENTICATED before their document is parsed, whatever it holds', async () => {
    for (const query of ['{ viewer { subject } ', `# ${'x'.repeat(100_000)}\n{ viewer { subject } }`, '{ a: __typename '.repeat(3000)]) {
      for (const headers of [{}, { authorization: 'Bearer not-a-token' }] as Record<string, string>[]) {
        const response = await postGraphQL(server.graphqlUrl, { query }, headers);
        expect(response.status).toBe(401);
        expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
      }
    }
    const get = await fetch(`${server.graphqlUrl}?query=${encodeURIComponent('{ viewer { subject ')}`, { headers: { accept: 'application/json' } });
    expect(get.status).toBe(401);
  });

  it('register no persisted query: the hash stays unknown to a verified caller', async () => {
    const query = '{ viewer { subject tenant } }';
    const extensions = { persistedQuery: { version: 1, sha256Hash: sha256(query) } };
    const refused = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, extensions }),
    });
    expect(refused.status).toBe(401);

    const authorization = `Bearer ${await signHs256({ sub: 'reader' })}`;
    const byHash = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization },
      body: JSON.stringify({ extensions }),
    });
    expect(((await byHash.json()) as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');

    // The verified caller registers it, and runs it by hash.
    await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ query, extensions }) });
    const known = await fetch(server.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ extensions }) });
    expect(await known.json()).toEqual({ data: { viewer: { subject: 'reader', tenant: 'tenant-a' } } });
  });
});
