/** TokenRefresh with fake sessions (a pure unit: `getToken` and `refreshAuth` are in the test's hands). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
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

describe('token refresh with a device clock ahead of the server', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('hands over a token once per its lifetime when the device clock runs 2 h ahead (no refresh loop)', async () => {
    // The server's (and the identity provider's) time; the device says two hours later.
    const serverNow = () => Date.now() - 2 * 3_600_000;
    vi.setSystemTime(Date.parse('2026-01-01T12:00:00Z'));
    /** A 15-minute token as the identity provider mints it: iat and exp by the server's clock. */
    const mint = (tag: string) => {
      const iat = Math.floor(serverNow() / 1000);
      return `h.${Buffer.from(JSON.stringify({ iat, exp: iat + 900, tag })).toString('base64url')}.s`;
    };
    let minted = 0;
    // An auth library that finds its cached token expired by the device's clock: a new one each time.
    const getToken = () => mint(`t${(minted += 1)}`);
    const refreshes: string[] = [];
    const tokens = new TokenRefresh({ getToken, leadMs: 60_000, onError: () => {} });
    const { session } = fakeSession('A', refreshes);
    tokens.start(session, mint('t0'));
    await vi.advanceTimersByTimeAsync(5_000);
    expect({ minted, refreshes: refreshes.length }).toEqual({ minted: 0, refreshes: 0 });
    // Its lifetime counted from when the client got it: refreshed once, 1 minute before its end…
    await vi.advanceTimersByTimeAsync(840_000 - 5_000);
    expect({ minted, refreshes: refreshes.length }).toEqual({ minted: 1, refreshes: 1 });
    // …and the next one a lifetime later, not at once.
    await vi.advanceTimersByTimeAsync(839_000);
    expect(refreshes.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(refreshes.length).toBe(2);
    tokens.stop();
  });

  it('never refreshes again right after a handover, even for a token that looks expired and has no iat', async () => {
    vi.setSystemTime(Date.parse('2026-01-01T12:00:00Z'));
    // exp already past by the device's clock, no iat: the lifetime is unknown.
    const stale = (tag: string) => `h.${Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) - 3_600, tag })).toString('base64url')}.s`;
    let calls = 0;
    const refreshes: string[] = [];
    const tokens = new TokenRefresh({ getToken: () => stale(`t${(calls += 1)}`), leadMs: 60_000, onError: () => {} });
    tokens.start(fakeSession('A', refreshes).session, stale('t0'));
    await vi.advanceTimersByTimeAsync(4_999);
    // The first refresh at once (the token looks expired), then none for the floor's length.
    expect(refreshes.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(refreshes.length).toBe(2);
    tokens.stop();
  });
});

describe('token refresh of a token shorter than the server’s notice period', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('calls getToken once per refresh, at half the token’s life, although the server notices every token handed over at once', async () => {
    vi.setSystemTime(Date.parse('2026-01-01T12:00:00Z'));
    const start = Date.now();
    /** A 20-second token as an identity provider mints it: the same token within one second. */
    const mint = () => {
      const iat = Math.floor(Date.now() / 1000);
      return `h.${Buffer.from(JSON.stringify({ iat, exp: iat + 20 })).toString('base64url')}.s`;
    };
    const expiryOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp * 1000;
    const calls: number[] = [];
    const tokens = new TokenRefresh({ getToken: () => (calls.push(Date.now() - start), mint()), leadMs: 60_000, onError: () => {} });
    // The server (WS_TOKEN_EXPIRY_NOTICE_MS 60 s) notices a token at once when it lives less than
    // that: at the acknowledgement, and again after each handover (its ping follows the answer).
    const notice = (token: string) => setTimeout(() => void tokens.notice(expiryOf(token)), 0);
    const { session } = fakeSession('A', []);
    (session as unknown as { execute: (document: unknown, variables: { token: string }) => Promise<unknown> }).execute = (_document, { token }) => {
      notice(token);
      return Promise.resolve({ refreshAuth: { expiresAt: null, stoppedSubscriptions: 0 } });
    };
    const first = mint();
    tokens.start(session, first);
    notice(first);
    await vi.advanceTimersByTimeAsync(30_000);
    tokens.stop();
    expect(calls).toEqual([10_000, 20_000, 30_000]);
  });

  it('follows the notice when a device clock behind the server has planned the refresh after the server will close', async () => {
    // The server's time; the device says two minutes earlier.
    vi.setSystemTime(Date.parse('2026-01-01T12:00:00Z'));
    const serverNow = () => Date.now() + 120_000;
    /** A 15-minute token minted 10 minutes ago by the server's clock (an auth library's cached token). */
    const iat = Math.floor(serverNow() / 1000) - 600;
    const token = `h.${Buffer.from(JSON.stringify({ iat, exp: iat + 900 })).toString('base64url')}.s`;
    let calls = 0;
    const tokens = new TokenRefresh({ getToken: () => ((calls += 1), `fresh-${calls}`), leadMs: 60_000, onError: () => {} });
    tokens.start(fakeSession('A', []).session, token);
    // The server notices it 60 s before its exp (4 minutes from now by the server's clock); the
    // device's plan (60 s before exp by its own clock) would come two minutes after that.
    await vi.advanceTimersByTimeAsync(240_000);
    expect(calls).toBe(0);
    await tokens.notice((iat + 900) * 1000, 60_000);
    tokens.stop();
    expect(calls).toBe(1);
  });

  it('follows a notice about a token whose expiry it cannot read', async () => {
    let calls = 0;
    const tokens = new TokenRefresh({ getToken: () => `opaque-${(calls += 1)}`, leadMs: 60_000, onError: () => {} });
    tokens.start(fakeSession('A', []).session, 'opaque-0');
    await tokens.notice(Date.now() + 30_000);
    tokens.stop();
    expect(calls).toBe(1);
  });
});
