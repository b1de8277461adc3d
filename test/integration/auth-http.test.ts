/**
 * The authentication matrix over HTTP (`POST /graphql`): every way a bearer token can be wrong
 * gets a 401 with `UNAUTHENTICATED`; a right one is mapped into `viewer`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer } from '../helpers/tributary.ts';
import { signHs256, startKeySetServer, TEST_SECRET, unsignedToken } from '../helpers/tokens.ts';

const VIEWER = '{ viewer { subject app env tenant roles permissions expiresAt } }';

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function askViewer(server: TestServer, headers: Record<string, string> = {}) {
  return postGraphQL(server.graphqlUrl, { query: VIEWER }, headers);
}

/** The one shape every refused request has: 401, no data, one UNAUTHENTICATED error. */
function expectUnauthenticated(response: { status: number; body: GraphQLResponseBody }, message?: RegExp): void {
  expect(response.status).toBe(401);
  expect(response.body.data ?? null).toBeNull();
  expect(response.body.errors).toHaveLength(1);
  expect(response.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  if (message) expect(response.body.errors?.[0]?.message).toMatch(message);
}

describe('HTTP authentication with JWT_SECRET', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET }, { autoDispose: false });
    return () => server.dispose();
  });

  it('maps the claims of a valid HS256 token into viewer', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await signHs256({
      sub: 'user-42',
      app: 'crm',
      env: 'staging',
      tenant: 'tenant-z',
      roles: ['editor'],
      permissions: ['crm.contacts.read', 'crm.deals.read'],
    });

    const response = await askViewer(server, bearer(token));

    expect(response.status).toBe(200);
    expect(response.body.errors).toBeUndefined();
    const viewer = (response.body.data as { viewer: Record<string, unknown> }).viewer;
    expect(viewer).toEqual({
      subject: 'user-42',
      app: 'crm',
      env: 'staging',
      tenant: 'tenant-z',
      roles: ['editor'],
      permissions: ['crm.contacts.read', 'crm.deals.read'],
      expiresAt: expect.any(String) as unknown,
    });
    // signHs256 sets exp to now + 3600 s; expiresAt is that instant as a DateTime.
    const expiresAt = Date.parse(viewer['expiresAt'] as string) / 1000;
    expect([now + 3600, now + 3601]).toContain(expiresAt);
  });

  it('answers 401 UNAUTHENTICATED when the Authorization header is missing', async () => {
    expectUnauthenticated(await askViewer(server), /Authentication required/);
  });

  it('answers 401 to an unsigned alg:none token', async () => {
    expectUnauthenticated(await askViewer(server, bearer(unsignedToken())));
  });

  it('answers 401 to a token signed with another secret', async () => {
    const token = await signHs256({}, { secret: 'another-secret-that-is-also-32-bytes-long!!' });
    expectUnauthenticated(await askViewer(server, bearer(token)), /signature/);
  });

  it('answers 401 to an expired token, saying it expired', async () => {
    const token = await signHs256({}, { expiresInSeconds: -60 });
    expectUnauthenticated(await askViewer(server, bearer(token)), /expired/i);
  });

  it('answers 401 to a token whose nbf is beyond the clock tolerance', async () => {
    const token = await signHs256({}, { notBeforeInSeconds: 120 });
    expectUnauthenticated(await askViewer(server, bearer(token)), /not yet valid/i);
  });

  it.each([
    ['Bearer without a token', 'Bearer'],
    ['a Basic credential', 'Basic abc'],
    ['a garbage token', 'Bearer garbage'],
    ['a token with characters a JWT cannot have', 'Bearer a$b.c!d.e'],
  ])('answers 401 to a malformed Authorization header: %s', async (_label, header) => {
    expectUnauthenticated(await askViewer(server, { authorization: header }));
  });

  // Deliberately wrong types, as a misconfigured issuer would send them.
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['permissions is a string', { permissions: 'crm.contacts.read' }, /permissions/],
    ['roles is a string', { roles: 'admin' }, /roles/],
    ['app is missing', { app: undefined }, /app/],
    ['sub is empty', { sub: '' }, /sub/],
    ['tenant is a number', { tenant: 7 }, /tenant/],
    ['tenant is over 200 characters', { tenant: 't'.repeat(201) }, /tenant/],
  ])('answers 401 to a token whose claims are of the wrong type: %s', async (_label, claims, message) => {
    // `undefined` drops the default claim from the signed JSON.
    const token = await signHs256(claims);
    expectUnauthenticated(await askViewer(server, bearer(token)), message);
  });
});

describe('HTTP authentication with JWT_ISSUER and JWT_AUDIENCE', () => {
  const issuer = 'https://issuer.tributary.test';
  const audience = 'tributary-api';
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ JWT_SECRET: TEST_SECRET, JWT_ISSUER: issuer, JWT_AUDIENCE: audience }, { autoDispose: false });
    return () => server.dispose();
  });

  it('accepts a token with the configured issuer and audience', async () => {
    const response = await askViewer(server, bearer(await signHs256({ iss: issuer, aud: audience })));
    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({ viewer: { subject: 'user-1', tenant: 'tenant-a' } });
  });

  it('answers 401 to a token from another issuer', async () => {
    const token = await signHs256({ iss: 'https://elsewhere.test', aud: audience });
    expectUnauthenticated(await askViewer(server, bearer(token)), /iss/);
  });

  it('answers 401 to a token for another audience', async () => {
    const token = await signHs256({ iss: issuer, aud: 'another-api' });
    expectUnauthenticated(await askViewer(server, bearer(token)), /aud/);
  });

  it('answers 401 to a token without issuer and audience', async () => {
    expectUnauthenticated(await askViewer(server, bearer(await signHs256())));
  });
});

// The key-set server stops with its test (onTestFinished), so each test starts its own pair.
describe('HTTP authentication with JWT_JWKS_URL', () => {
  it('accepts RS256 and ES256 tokens signed by a key of the key set', async () => {
    const keys = await startKeySetServer();
    const server = await startTestServer({ JWT_JWKS_URL: keys.url });

    for (const alg of ['RS256', 'ES256'] as const) {
      const response = await askViewer(server, bearer(await keys.sign(alg, { sub: `signed-${alg}` })));
      expect(response.status, alg).toBe(200);
      expect(response.body.data, alg).toMatchObject({ viewer: { subject: `signed-${alg}`, app: 'shop', tenant: 'tenant-a' } });
    }
  });

  it('refuses an HS256 token when only the key set is configured, whatever secret signed it', async () => {
    const keys = await startKeySetServer();
    const server = await startTestServer({ JWT_JWKS_URL: keys.url });
    // The server has no HMAC secret, so any HS256 token would only verify through algorithm confusion.
    for (const secret of [TEST_SECRET, 'any-other-secret-at-least-32-bytes-long!!']) {
      expectUnauthenticated(await askViewer(server, bearer(await signHs256({}, { secret }))), /algorithm/);
    }
    // The key set itself still works on this server: the refusal is about the algorithm.
    expect((await askViewer(server, bearer(await keys.sign('RS256')))).status).toBe(200);
  });
});

describe('HTTP authentication in development mode', () => {
  const developmentViewer = {
    subject: 'development',
    app: 'default',
    env: 'default',
    tenant: 'default',
    roles: ['admin'],
    permissions: [],
    expiresAt: null,
  };
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { autoDispose: false });
    return () => server.dispose();
  });

  it('answers every request without a token as the development principal', async () => {
    const response = await askViewer(server);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ data: { viewer: developmentViewer } });
  });

  it('ignores a token and answers as the development principal', async () => {
    const response = await askViewer(server, bearer(await signHs256({ sub: 'someone-else' })));
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ data: { viewer: developmentViewer } });
  });
});

describe('configuration', () => {
  it('refuses NODE_ENV=production without JWT configuration, naming JWT_SECRET', () => {
    const load = () => loadConfig({ NODE_ENV: 'production', DATA_DIR: 'memory://' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/JWT_SECRET/);
  });
});
