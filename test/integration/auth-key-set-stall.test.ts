/**
 * An identity provider that accepts the connection and never answers: the keys already fetched
 * keep verifying tokens at once — the stale set is fetched again in the background, not awaited —
 * while a token whose key is not known still waits for that fetch. Real HTTP key-set server that
 * holds its answers until the test releases them; the verifier's clock is moved by hand.
 */
import { expect, it } from 'vitest';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/token-verifier.ts';
import { startHangingKeySet, type HangingKeySet } from '../helpers/hanging-key-set.ts';
import { deferred } from '../helpers/wait-for.ts';

/** A verifier on `keys` whose clock the test moves; `fetched` is told each fetch's outcome. */
function verifierOf(keys: HangingKeySet, clock: { now: number }, fetched: (ok: boolean) => void = () => {}): TokenVerifier {
  return createTokenVerifier({
    auth: { mode: 'jwt', jwksUrl: keys.url },
    keySet: { maxAgeMs: 600_000, cooldownMs: 30_000, retryAfterFailureMs: 10_000, timeoutMs: 10_000, now: () => clock.now, onFetched: fetched },
  });
}

it('verifies tokens of known keys while a stale key set is fetched again from a provider that hangs', async () => {
  const keys = await startHangingKeySet();
  const clock = { now: 1_000_000 };
  let fetch = deferred<boolean>();
  const verifier = verifierOf(keys, clock, (ok) => fetch.resolve(ok));
  const token = await keys.sign('k1', { sub: 'known' });
  expect((await verifier.verify(`Bearer ${token}`)).subject).toBe('known');
  expect(await fetch.promise).toBe(true);

  keys.hang();
  clock.now += 11 * 60_000; // older than 10 minutes: fetched again
  fetch = deferred();
  const arrived = keys.nextRequest();
  const verified = Promise.all(Array.from({ length: 20 }, () => verifier.verify(`Bearer ${token}`)));
  // The provider never answers: the fetch settles only at its timeout (10 s), failing.
  const first = await Promise.race([verified.then(() => 'verified'), fetch.promise.then(() => 'the fetch settled')]);
  expect(first).toBe('verified');
  expect((await verified).map((principal) => principal.subject)).toEqual(Array.from({ length: 20 }, () => 'known'));
  await arrived;
  expect(keys.requests).toBe(2); // one fetch for all of them

  keys.release();
  expect(await fetch.promise).toBe(true);
  expect((await verifier.verify(`Bearer ${token}`)).subject).toBe('known');
  expect(keys.requests).toBe(2); // fresh again: not fetched
});

it('waits for the fetch for a token whose key is not known, and verifies it once the provider answers', async () => {
  const keys = await startHangingKeySet();
  const clock = { now: 1_000_000 };
  const verifier = verifierOf(keys, clock);
  expect((await verifier.verify(`Bearer ${await keys.sign('k1', { sub: 'known' })}`)).subject).toBe('known');

  keys.publishSecondKey();
  keys.hang();
  clock.now += 11 * 60_000;
  const arrived = keys.nextRequest();
  const waiting = verifier.verify(`Bearer ${await keys.sign('k2', { sub: 'rotated' })}`);
  let settled = false;
  waiting.then(
    () => (settled = true),
    () => (settled = true),
  );
  await arrived;
  // The known key's token is verified meanwhile; the new key's waits for the set.
  expect((await verifier.verify(`Bearer ${await keys.sign('k1', { sub: 'known' })}`)).subject).toBe('known');
  expect(settled).toBe(false);
  keys.release();
  expect((await waiting).subject).toBe('rotated');
  expect(keys.requests).toBe(2);
});
