/**
 * Refreshes of one socket's token apply in the order they were asked for (`refreshAuth`
 * mutations and ping refreshes share one queue): an older token whose key must first be fetched
 * from the identity provider cannot land after a newer one and give the socket back a permission
 * the newer token dropped. Real tokens, a real JWKS endpoint the test holds; the socket's
 * `SocketAuth` is driven directly so the order of the verifications is the test's to choose.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/token-verifier.ts';
import { SocketAuth } from '../../src/server/ws/socket-auth.ts';
import { startHangingKeySet } from '../helpers/hanging-key-set.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';

/** The real verifier (HS256 and the key set), telling when each verification starts and ends. */
function observedVerifier(jwksUrl: string) {
  const real = createTokenVerifier({ auth: { mode: 'jwt', secret: TEST_SECRET, jwksUrl } });
  const verifications = new Map<string, Promise<unknown>>();
  const verifier: TokenVerifier = {
    mode: 'jwt',
    clockToleranceMs: real.clockToleranceMs,
    verify(authorization) {
      const verifying = real.verify(authorization);
      verifications.set(authorization ?? '', verifying.catch(() => undefined));
      return verifying;
    },
  };
  return { real, verifier, verifications };
}

function socketAuth(verifier: TokenVerifier): SocketAuth {
  return new SocketAuth({ verifier, graceMs: 0, noticeMs: 0, notify: () => {}, expired: () => {} });
}

describe('token refreshes on one socket', () => {
  it('apply in the order they were asked for, even when the newer token is verified first', async () => {
    const keys = await startHangingKeySet();
    const { real, verifier, verifications } = observedVerifier(keys.url);
    const auth = socketAuth(verifier);
    auth.start(await real.verify(`Bearer ${await signHs256({ permissions: ['orders.read', 'billing.read'] })}`));

    // Asked first: a token of a key not fetched yet (the provider is held), still with billing.read.
    const older = await keys.sign('k1', { permissions: ['orders.read', 'billing.read'] }, 600);
    // Asked second: the newer token, billing.read dropped.
    const newer = await signHs256({ permissions: ['orders.read'] }, { expiresInSeconds: 7200 });
    keys.hang();
    const fetching = keys.nextRequest();
    const answered: string[] = [];
    const first = auth.refresh(older, (result) => answered.push(`older ${result.kind}`));
    await fetching;
    const second = auth.refresh(newer, (result) => answered.push(`newer ${result.kind}`));
    // Where the newer token's verification is under way already, it ends before the older one's key arrives.
    await verifications.get(`Bearer ${newer}`);
    keys.release();
    await Promise.all([first, second]);

    const principal: Principal | undefined = auth.principal;
    expect(principal?.permissions).toEqual(['orders.read']);
    expect(principal?.expiresAt).toBe((await real.verify(`Bearer ${newer}`)).expiresAt);
    expect(answered).toEqual(['older refreshed', 'newer refreshed']);
    auth.dispose();
  });

  it('go on after a refresh that is refused: the next one applies', async () => {
    const keys = await startHangingKeySet();
    const { real, verifier } = observedVerifier(keys.url);
    const auth = socketAuth(verifier);
    auth.start(await real.verify(`Bearer ${await signHs256({ permissions: ['orders.read'] })}`));

    const token = await signHs256({ permissions: ['orders.read', 'billing.read'] });
    const refused = expect(auth.refresh('not-a-token', (result) => result.kind)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const next = auth.refresh(token, (result) => result.kind);
    await refused;
    expect(await next).toBe('refreshed');
    expect(auth.principal?.permissions).toEqual(['orders.read', 'billing.read']);
    auth.dispose();
  });
});
