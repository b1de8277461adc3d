/**
 * Identifier claims (sub, app, env, tenant, roles and permissions entries) that Postgres text or a
 * scope key cannot carry — U+0000 above all, any control character, a lone surrogate — are refused
 * at verification (UNAUTHENTICATED, saying which claim), before a tenant can reach a database
 * write or a shared analytics batch. Real HS256 tokens, the real verifier.
 */
import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../src/auth/token-verifier.ts';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../helpers/tokens.ts';

const verifier = createTokenVerifier({ auth: { mode: 'jwt', secret: TEST_SECRET } });

async function refusal(claims: TokenClaims): Promise<{ code: string; message: unknown } | 'accepted'> {
  try {
    await verifier.verify(`Bearer ${await signHs256(claims)}`);
    return 'accepted';
  } catch (error) {
    if (!(error instanceof TributaryError)) throw error;
    return { code: error.code, message: error.message };
  }
}

describe('identifier claims the database and scope keys cannot carry', () => {
  it.each<[string, TokenClaims]>([
    ['tenant', { tenant: 'x\u0000y' }],
    ['tenant', { tenant: 'tab\there' }],
    ['tenant', { tenant: 'del\u007f' }],
    ['tenant', { tenant: 'c1\u0085' }],
    ['tenant', { tenant: 'lone\ud800' }],
    ['sub', { sub: 'user\u0000' }],
    ['app', { app: 'shop\u0000' }],
    ['env', { env: '\u001bprod' }],
    ['roles', { roles: ['admin', 'x\u0000'] }],
    ['permissions', { permissions: ['crm.contacts.read\u0000'] }],
  ])("refuses a '%s' claim holding %j", async (claim, claims) => {
    expect(await refusal(claims)).toEqual({
      code: ErrorCode.UNAUTHENTICATED,
      message: expect.stringMatching(new RegExp(`^Invalid token: claim '${claim}' .*must not contain control characters or lone surrogates$`)) as unknown,
    });
  });

  it('accepts identifiers in any script, emoji (surrogate pairs) included', async () => {
    const principal = await verifier.verify(`Bearer ${await signHs256({ sub: 'zoë', tenant: 'société-😀', roles: ['admin'], permissions: ['crm.contacts.read'] })}`);
    expect(principal).toMatchObject({ subject: 'zoë', tenant: 'société-😀', roles: ['admin'] });
  });
});
