/**
 * What the client reads from a token: its expiry, to refresh it before the server closes the
 * socket (4419), and whose it is, to drop what another user's subscriptions received (a new login
 * on the same client). The token is NOT verified here — the server does that; a token whose
 * payload cannot be read is treated as one without expiry (the server's 4419 then still triggers a
 * reconnect with a fresh token).
 */

/** The token's `exp` in ms since the epoch, or undefined when it has none or cannot be read. */
export function tokenExpiresAt(token: string): number | undefined {
  const exp = claimsOf(token)?.['exp'];
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/**
 * Who a token stands for, as the server tells principals apart (its `refreshAuth` refuses another
 * subject, tenant, app or env): a key equal for two tokens of one principal. No token is a
 * principal of its own (a server without authentication); a token whose claims cannot be read is
 * compared whole — any other token counts as another user, so nothing is ever shown to the wrong one.
 */
export function tokenPrincipal(token: string | undefined): string {
  if (token === undefined) return 'none';
  const claims = claimsOf(token);
  if (claims === undefined) return `token:${token}`;
  return JSON.stringify(['claims', claims['sub'] ?? null, claims['tenant'] ?? null, claims['app'] ?? null, claims['env'] ?? null]);
}

/**
 * What a token lets its holder read, as the server decides it (`permissions`, and `roles`: `admin`
 * reads everything): a key equal for two tokens that grant the same, whatever their order. Two
 * tokens of one principal (`tokenPrincipal`) may differ here — a permission removed, then the next
 * token sent on a new socket — and the server answers a resumed subscription it may no longer read
 * with silence, so what was read under the other grants must be read again. No token grants
 * nothing; a token whose claims cannot be read is compared whole.
 */
export function tokenGrants(token: string | undefined): string {
  if (token === undefined) return 'none';
  const claims = claimsOf(token);
  if (claims === undefined) return `token:${token}`;
  return JSON.stringify(['grants', sortedStrings(claims['permissions']), sortedStrings(claims['roles'])]);
}

/** A claim's strings, sorted and without repeats (a claim that is no array: none). */
function sortedStrings(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return [...new Set(value.filter((item): item is string => typeof item === 'string'))].sort();
}

/** The token's payload (a JWT's second part), or undefined when it cannot be read. */
function claimsOf(token: string): Readonly<Record<string, unknown>> | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (char) => char.charCodeAt(0)));
    const claims: unknown = JSON.parse(json);
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The token's `iat` in ms since the epoch, or undefined when it has none or cannot be read. */
export function tokenIssuedAt(token: string): number | undefined {
  const iat = claimsOf(token)?.['iat'];
  return typeof iat === 'number' && Number.isFinite(iat) ? iat * 1000 : undefined;
}

/**
 * When to ask for a new token, in ms from `now` (when the client received it): `leadMs` before
 * the expiry, or halfway through a token that lives less than twice that; at once when it has
 * (nearly) expired. Undefined without an expiry.
 *
 * `exp` and `iat` are the issuer's clock, `now` the device's. A token the server has just accepted
 * cannot have expired, nor be valid longer than it lives (`exp − iat`): when the device's clock
 * says so, it is wrong (a phone set two hours ahead saw every fresh 15-minute token as expired and
 * asked for a new one at once, thousands of times a second), and the token's lifetime counted from
 * now is used instead.
 */
export function refreshDelay(expiresAt: number | undefined, now: number, leadMs: number, issuedAt?: number): number | undefined {
  if (expiresAt === undefined) return undefined;
  let remaining = expiresAt - now;
  if (issuedAt !== undefined && issuedAt < expiresAt) {
    const lifetime = expiresAt - issuedAt;
    if (remaining <= 0 || remaining > lifetime) remaining = lifetime;
  }
  if (remaining <= 0) return 0;
  return Math.max(0, remaining - Math.min(leadMs, remaining / 2));
}

/** `refreshDelay` for `token`, received `now`. */
export function tokenRefreshDelay(token: string | undefined, now: number, leadMs: number): number | undefined {
  if (token === undefined) return undefined;
  return refreshDelay(tokenExpiresAt(token), now, leadMs, tokenIssuedAt(token));
}
