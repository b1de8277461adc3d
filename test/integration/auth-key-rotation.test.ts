/**
 * A key the identity provider adds (key rotation) within the cooldown after the last fetch of its
 * set (which anyone can cause with a junk `kid`): a token signed with it is not refused as
 * invalid — UNAVAILABLE (HTTP 503 with Retry-After, close 1013: retried) — until a fetch made
 * after its `kid` was first seen; then it verifies. A `kid` that such a fetch still lacks is
 * refused (UNAUTHENTICATED), and unknown `kid`s are fetched for once per cooldown, one fetch at a
 * time. Real HTTP key-set server; the verifier's clock is moved by hand, the server's is real.
 */
import { generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/token-verifier.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { DEFAULT_CLAIMS, startKeySetServer, type KeySetServer } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openSocket } from '../helpers/ws-client.ts';

const COOLDOWN_MS = 30_000;
const TRY_AGAIN_LATER = 1013;

function verifierOf(keys: KeySetServer, clock: { now: number }): TokenVerifier {
  return createTokenVerifier({
    auth: { mode: 'jwt', jwksUrl: keys.url },
    keySet: { maxAgeMs: 600_000, cooldownMs: COOLDOWN_MS, retryAfterFailureMs: 10_000, now: () => clock.now },
  });
}

/** A token signed with a key no key set ever serves, under `kid`. */
async function junkToken(kid: string): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...DEFAULT_CLAIMS }).setProtectedHeader({ alg: 'RS256', kid }).setIssuedAt(now).setExpirationTime(now + 3600).sign(privateKey);
}

async function outcome(verifier: TokenVerifier, token: string): Promise<string> {
  try {
    return `accepted ${(await verifier.verify(`Bearer ${token}`)).subject}`;
  } catch (error) {
    if (error instanceof TributaryError) return error.code;
    throw error;
  }
}

describe('a key added to the key set within the cooldown of its last fetch', () => {
  it('is UNAVAILABLE (with when to retry) until the set is fetched again, then verifies', async () => {
    const keys = await startKeySetServer();
    const clock = { now: 1_000_000 };
    const verifier = verifierOf(keys, clock);
    expect(await outcome(verifier, await keys.sign('RS256', { sub: 'before' }))).toBe('accepted before');
    // Someone's junk kid right after: within the cooldown, not fetched for, not yet refused either.
    expect(await outcome(verifier, await junkToken('junk'))).toBe(ErrorCode.UNAVAILABLE);
    keys.publishExtraKey();
    const rotated = await keys.signWithExtraKey({ sub: 'rotated' });

    clock.now += 5_000;
    const refusal = await verifier.verify(`Bearer ${rotated}`).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(TributaryError);
    expect(refusal).toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { retryAfterMs: COOLDOWN_MS - 5_000 } });
    expect(keys.fetches).toBe(1);

    clock.now += COOLDOWN_MS;
    // The cooldown is over: one fetch for however many tokens ask at once.
    const outcomes = await Promise.all([outcome(verifier, rotated), outcome(verifier, rotated), outcome(verifier, await junkToken('junk'))]);
    expect(outcomes).toEqual(['accepted rotated', 'accepted rotated', ErrorCode.UNAUTHENTICATED]);
    expect(keys.fetches).toBe(2);
  });

  it('refuses a kid that a fetch made after it was first seen still lacks, without fetching again within the cooldown', async () => {
    const keys = await startKeySetServer();
    const clock = { now: 1_000_000 };
    const verifier = verifierOf(keys, clock);
    const junk = await junkToken('never-published');
    expect(await outcome(verifier, junk)).toBe(ErrorCode.UNAUTHENTICATED); // first fetch, made for it
    expect(keys.fetches).toBe(1);
    clock.now += 1_000;
    expect(await outcome(verifier, junk)).toBe(ErrorCode.UNAUTHENTICATED);
    expect(await outcome(verifier, await keys.sign('ES256', { sub: 'known' }))).toBe('accepted known');
    expect(keys.fetches).toBe(1);
    clock.now += COOLDOWN_MS;
    expect(await outcome(verifier, junk)).toBe(ErrorCode.UNAUTHENTICATED);
    expect(keys.fetches).toBe(2);
  });
});

/** A server whose key set was fetched once (for a token of a known key), then gained a key. */
async function rotatedServer() {
  const keys = await startKeySetServer();
  const server = await startTestServer({ JWT_JWKS_URL: keys.url });
  const ask = (token: string) =>
    fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
  expect((await ask(await keys.sign('RS256'))).status).toBe(200);
  keys.publishExtraKey();
  return { keys, server, ask, rotated: await keys.signWithExtraKey({ sub: 'rotated' }) };
}

describe('a rotated key within the cooldown, on a server', () => {
  it('answers HTTP 503 UNAVAILABLE with Retry-After, not 401', async () => {
    const { keys, ask, rotated } = await rotatedServer();

    const response = await ask(rotated);
    const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
    expect(response.status).toBe(503);
    expect(body.errors?.map((error) => error.extensions?.code)).toEqual([ErrorCode.UNAVAILABLE]);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(response.headers.get('retry-after'))).toBeLessThanOrEqual(COOLDOWN_MS / 1000);
    expect(keys.fetches).toBe(1);
  });

  it('closes the socket with 1013 (retried by clients), not 4403', async () => {
    const { keys, server, rotated } = await rotatedServer();

    const client = await openSocket(server.wsUrl);
    client.send({ type: 'connection_init', payload: { authorization: `Bearer ${rotated}` } });
    expect((await client.closed()).code).toBe(TRY_AGAIN_LATER);
    expect(keys.fetches).toBe(1);
  });
});
