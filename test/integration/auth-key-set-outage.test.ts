/**
 * The identity provider's key set down: tokens signed with keys already fetched are still
 * verified (the keys are kept past their age), a token whose key is not known is answered
 * UNAVAILABLE (try again), not UNAUTHENTICATED, and the provider is not asked at every
 * verification while it fails. Real HTTP key-set server; the verifier's clock is moved by hand.
 */
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/token-verifier.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { startKeySetServer, type KeySetServer } from '../helpers/tokens.ts';

const MINUTE = 60_000;

function verifierOf(keys: KeySetServer, clock: { now: number }, onFetched?: (ok: boolean) => void): TokenVerifier {
  return createTokenVerifier({
    auth: { mode: 'jwt', jwksUrl: keys.url },
    keySet: { maxAgeMs: 10 * MINUTE, cooldownMs: 30_000, retryAfterFailureMs: 10_000, now: () => clock.now, ...(onFetched && { onFetched }) },
  });
}

/** The outcomes of a verifier's fetches, to await one that runs in the background. */
function fetchOutcomes(): { readonly onFetched: (ok: boolean) => void; next(): Promise<boolean> } {
  const settled: boolean[] = [];
  let waiting: ((ok: boolean) => void) | undefined;
  return {
    onFetched(ok) {
      if (waiting) waiting(ok);
      else settled.push(ok);
      waiting = undefined;
    },
    next() {
      const ok = settled.shift();
      return ok === undefined ? new Promise((resolve) => (waiting = resolve)) : Promise.resolve(ok);
    },
  };
}

async function outcome(verifier: TokenVerifier, token: string): Promise<string> {
  try {
    return `accepted ${(await verifier.verify(`Bearer ${token}`)).subject}`;
  } catch (error) {
    if (error instanceof TributaryError) return error.code;
    throw error;
  }
}

describe('the key set of JWT_JWKS_URL during an outage of its provider', () => {
  it('keeps verifying with the keys it has past their age, asking the provider again only after a pause', async () => {
    const keys = await startKeySetServer();
    const clock = { now: 1_000_000 };
    const fetches = fetchOutcomes();
    const verifier = verifierOf(keys, clock, fetches.onFetched);
    const token = await keys.sign('RS256', { sub: 'kept' });
    expect(await outcome(verifier, token)).toBe('accepted kept');
    expect(await fetches.next()).toBe(true);
    expect(keys.fetches).toBe(1);

    keys.failWith(503);
    clock.now += 11 * MINUTE; // past the keys' age: they are fetched again (in the background), which fails
    expect(await outcome(verifier, token)).toBe('accepted kept');
    expect(await fetches.next()).toBe(false);
    expect(await outcome(verifier, await keys.sign('ES256', { sub: 'kept-too' }))).toBe('accepted kept-too');
    expect(keys.fetches).toBe(2);

    clock.now += 10_000; // the pause after a failure is over: one more try
    expect(await outcome(verifier, token)).toBe('accepted kept');
    expect(await fetches.next()).toBe(false);
    expect(keys.fetches).toBe(3);

    keys.failWith(undefined);
    clock.now += 10_000;
    expect(await outcome(verifier, token)).toBe('accepted kept');
    expect(await fetches.next()).toBe(true);
    expect(keys.fetches).toBe(4);
    clock.now += 1_000; // fresh again: no fetch
    expect(await outcome(verifier, token)).toBe('accepted kept');
    expect(keys.fetches).toBe(4);
  });

  it('answers UNAVAILABLE while no key set was ever fetched, and verifies once the provider answers', async () => {
    const keys = await startKeySetServer();
    const clock = { now: 1_000_000 };
    const verifier = verifierOf(keys, clock);
    const token = await keys.sign('RS256', { sub: 'first' });
    keys.failWith(502);
    expect(await outcome(verifier, token)).toBe(ErrorCode.UNAVAILABLE);
    expect(await outcome(verifier, token)).toBe(ErrorCode.UNAVAILABLE);
    expect(keys.fetches).toBe(1);

    keys.failWith(undefined);
    clock.now += 10_000;
    expect(await outcome(verifier, token)).toBe('accepted first');
  });

  it('answers UNAVAILABLE for a key the provider may have added while it is down, and UNAUTHENTICATED for a bad signature', async () => {
    const keys = await startKeySetServer();
    const clock = { now: 1_000_000 };
    const verifier = verifierOf(keys, clock);
    expect(await outcome(verifier, await keys.sign('RS256'))).toBe('accepted user-1');
    const newKeyToken = await keys.signWithExtraKey({ sub: 'rotated' });

    // Within the cooldown an unknown key is not fetched for, nor refused before a fetch made after it was first seen.
    expect(await outcome(verifier, newKeyToken)).toBe(ErrorCode.UNAVAILABLE);
    expect(keys.fetches).toBe(1);
    keys.failWith(503);
    clock.now += 31_000;
    expect(await outcome(verifier, newKeyToken)).toBe(ErrorCode.UNAVAILABLE);

    // A token of a known key with a broken signature is invalid whether or not the provider answers.
    const signed = await keys.sign('RS256');
    const [header, payload] = signed.split('.');
    const forged = `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
    expect(await outcome(verifier, forged)).toBe(ErrorCode.UNAUTHENTICATED);

    keys.publishExtraKey();
    keys.failWith(undefined);
    clock.now += 10_000;
    expect(await outcome(verifier, newKeyToken)).toBe('accepted rotated');
  });
});
