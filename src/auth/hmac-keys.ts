import type { AuthConfig } from '../config.ts';
import { ErrorCode, TributaryError } from '../errors.ts';

/**
 * Which HS256 secret checks a token, by the `kid` in its protected header:
 *
 * - `JWT_SECRET` alone: that secret, whatever the `kid` (as before key ids existed here).
 * - `JWT_SECRETS` set: a token with a `kid` is checked with that kid's secret and no other; an
 *   unknown `kid` is refused. A token without a `kid` is checked with `JWT_SECRET` when it is set
 *   (the issuer of the old secret has not moved to key ids yet), else refused.
 *
 * One secret per token, never "try each": a kid-less token accepted by whichever secret matches
 * would make retiring a secret depend on no issuer still holding it, and a kid-less token would
 * be checked by a key picked from the list's order — what a rotation changes, instance by
 * instance, during a rolling restart. jose's local key sets take no symmetric keys (`oct`), so
 * the choice is this resolver, called by `jwtVerify` with the protected header.
 *
 * @returns undefined when no HS256 secret is configured.
 */
export function hmacKeyResolver(auth: Extract<AuthConfig, { mode: 'jwt' }>): ((header: { readonly kid?: unknown }) => Uint8Array) | undefined {
  const encoder = new TextEncoder();
  const withoutKid = auth.secret === undefined ? undefined : encoder.encode(auth.secret);
  if (auth.secrets === undefined) return withoutKid && (() => withoutKid);
  const byKid = new Map(auth.secrets.map(({ kid, secret }) => [kid, encoder.encode(secret)]));
  return ({ kid }) => {
    if (kid === undefined) {
      if (withoutKid) return withoutKid;
      throw new TributaryError(ErrorCode.UNAUTHENTICATED, 'Invalid token: a kid header is required');
    }
    const key = typeof kid === 'string' ? byKid.get(kid) : undefined;
    // The kid is the token's: not echoed (it is the caller's text, and says nothing the caller does not know).
    if (!key) throw new TributaryError(ErrorCode.UNAUTHENTICATED, 'Invalid token: unknown key id (kid)');
    return key;
  };
}
