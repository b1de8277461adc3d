import { describe, expect, it } from 'vitest';
import { refreshDelay, tokenExpiresAt, tokenGrants, tokenPrincipal } from '../../src/token.ts';

function jwt(payload: object): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'HS256' })}.${encode(payload)}.signature`;
}

describe('token expiry', () => {
  it('reads exp (seconds) from the payload without verifying, in ms', () => {
    expect(tokenExpiresAt(jwt({ sub: 'u', exp: 1_900_000_000, name: 'Zoë ✓' }))).toBe(1_900_000_000_000);
  });

  it('gives undefined for a token without exp or one it cannot read', () => {
    expect(tokenExpiresAt(jwt({ sub: 'u' }))).toBeUndefined();
    expect(tokenExpiresAt('opaque-token')).toBeUndefined();
    expect(tokenExpiresAt('a.!!!.c')).toBeUndefined();
    expect(tokenExpiresAt(jwt({ exp: 'soon' }))).toBeUndefined();
  });

  it('refreshes the lead time before expiry, halfway through a short-lived token, at once when expired', () => {
    const now = 1_000_000;
    expect(refreshDelay(now + 3_600_000, now, 60_000)).toBe(3_540_000);
    expect(refreshDelay(now + 30_000, now, 60_000)).toBe(15_000);
    expect(refreshDelay(now - 1, now, 60_000)).toBe(0);
    expect(refreshDelay(undefined, now, 60_000)).toBeUndefined();
  });

  it('counts a token’s lifetime (exp − iat) from now when the device clock contradicts it (ahead: looks expired; behind: looks longer-lived)', () => {
    const issuedAt = 1_000_000;
    const expiresAt = issuedAt + 900_000;
    // The device two hours ahead: expired by its clock, though the server just took it.
    expect(refreshDelay(expiresAt, issuedAt + 7_200_000, 60_000, issuedAt)).toBe(840_000);
    // Two hours behind: valid for 2 h 15 min by its clock; the token lives 15 min.
    expect(refreshDelay(expiresAt, issuedAt - 7_200_000, 60_000, issuedAt)).toBe(840_000);
    // A clock that agrees: the expiry as it reads it (a token received 5 minutes into its life).
    expect(refreshDelay(expiresAt, issuedAt + 300_000, 60_000, issuedAt)).toBe(540_000);
  });
});

describe('token principal', () => {
  it('is the same for two tokens of one subject, tenant, app and env, and another when any differs', () => {
    const alice = { sub: 'alice', tenant: 't-a', app: 'shop', env: 'prod' };
    expect(tokenPrincipal(jwt({ ...alice, exp: 1, permissions: ['a'] }))).toBe(tokenPrincipal(jwt({ ...alice, exp: 2, permissions: ['b'] })));
    for (const other of [{ sub: 'bob' }, { tenant: 't-b' }, { app: 'crm' }, { env: 'dev' }]) {
      expect(tokenPrincipal(jwt({ ...alice, ...other }))).not.toBe(tokenPrincipal(jwt(alice)));
    }
    expect(tokenPrincipal(jwt({ sub: 'alice', app: 'shop', env: 'prod' }))).not.toBe(tokenPrincipal(jwt(alice)));
  });

  it('tells no token apart from any token, and compares unreadable tokens whole', () => {
    expect(tokenPrincipal(undefined)).toBe(tokenPrincipal(undefined));
    expect(tokenPrincipal(undefined)).not.toBe(tokenPrincipal(jwt({})));
    expect(tokenPrincipal('opaque-1')).toBe(tokenPrincipal('opaque-1'));
    expect(tokenPrincipal('opaque-1')).not.toBe(tokenPrincipal('opaque-2'));
  });
});

describe('what a token lets its holder read', () => {
  it('is the same for the same permissions and roles in any order, whatever else changed', () => {
    const ann = { sub: 'ann', tenant: 't', permissions: ['crm.contacts.read', 'orders.read'], roles: ['staff'] };
    expect(tokenGrants(jwt({ ...ann, exp: 1 }))).toBe(tokenGrants(jwt({ ...ann, exp: 2, permissions: ['orders.read', 'crm.contacts.read', 'orders.read'] })));
  });

  it('differs when a permission or a role was removed or added', () => {
    const ann = { sub: 'ann', tenant: 't', permissions: ['crm.contacts.read'], roles: ['admin'] };
    for (const other of [{ permissions: [] }, { permissions: ['crm.contacts.read', 'orders.read'] }, { roles: [] }, { permissions: undefined }]) {
      expect(tokenGrants(jwt({ ...ann, ...other }))).not.toBe(tokenGrants(jwt(ann)));
    }
  });

  it('tells no token apart from any token, and compares unreadable tokens whole', () => {
    expect(tokenGrants(undefined)).not.toBe(tokenGrants(jwt({})));
    expect(tokenGrants('opaque-1')).toBe(tokenGrants('opaque-1'));
    expect(tokenGrants('opaque-1')).not.toBe(tokenGrants('opaque-2'));
  });
});
