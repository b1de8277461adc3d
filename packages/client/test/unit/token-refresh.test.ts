/** TokenRefresh with fake sessions (a pure unit: `getToken` and `refreshAuth` are in the test's hands). */
import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/session.ts';
import { TokenRefresh } from '../../src/token-refresh.ts';
import { deferred, type Deferred } from '../../../../test/helpers/wait-for.ts';

/** An unsigned JWT expiring `seconds` from now (only its `exp` is read). */
const jwt = (seconds: number, tag: string) => `h.${Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + seconds, tag })).toString('base64url')}.s`;

/** A session whose `refreshAuth` records `name` and the token handed over. */
function fakeSession(name: string, refreshes: string[]): { session: Session; controller: AbortController } {
  const controller = new AbortController();
  const session = {
    signal: controller.signal,
    execute: (_document: unknown, variables: { token: string }) => {
      refreshes.push(`${name}:${variables.token}`);
      return Promise.resolve({ refreshAuth: { expiresAt: null, stoppedSubscriptions: 0 } });
    },
  } as unknown as Session;
  return { session, controller };
}

describe('token refresh', () => {
  it('refreshes the new socket although a refresh started for the old one is still waiting for getToken', async () => {
    const old = jwt(3600, 'old');
    const fresh = jwt(3600, 'fresh');
    const pending: Deferred<string>[] = [];
    const getToken = () => {
      const answer = deferred<string>();
      pending.push(answer);
      return answer.promise;
    };
    const refreshes: string[] = [];
    const tokens = new TokenRefresh({ getToken, leadMs: 60_000, onError: () => {} });
    const a = fakeSession('A', refreshes);
    tokens.start(a.session, old);
    const onA = tokens.refresh(); // socket A's expiry notice: getToken is slow
    a.controller.abort(); // A dies meanwhile; B is acknowledged with the same old token
    const b = fakeSession('B', refreshes);
    tokens.start(b.session, old);
    const onB = tokens.refresh(); // B's expiry notice
    for (const answer of pending) answer.resolve(fresh);
    await Promise.all([onA, onB]);
    tokens.stop();
    expect(refreshes).toEqual([`B:${fresh}`]);
  });

  it('joins a refresh already running for the same socket (one getToken call)', async () => {
    const fresh = jwt(3600, 'fresh');
    let calls = 0;
    const answer = deferred<string>();
    const refreshes: string[] = [];
    const tokens = new TokenRefresh({ getToken: () => ((calls += 1), answer.promise), leadMs: 60_000, onError: () => {} });
    tokens.start(fakeSession('A', refreshes).session, jwt(3600, 'old'));
    const first = tokens.refresh();
    const second = tokens.refresh();
    answer.resolve(fresh);
    await Promise.all([first, second]);
    tokens.stop();
    expect({ calls, refreshes }).toEqual({ calls: 1, refreshes: [`A:${fresh}`] });
  });
});
