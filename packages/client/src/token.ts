/**
 * What the client reads from a token: only its expiry, to refresh it before the server closes the
 * socket (4419). The token is NOT verified here — the server does that; a token whose payload
 * cannot be read is treated as one without expiry (the server's 4419 then still triggers a
 * reconnect with a fresh token).
 */

/** The token's `exp` in ms since the epoch, or undefined when it has none or cannot be read. */
export function tokenExpiresAt(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (char) => char.charCodeAt(0)));
    const claims: unknown = JSON.parse(json);
    const exp = typeof claims === 'object' && claims !== null ? (claims as { exp?: unknown }).exp : undefined;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to ask for a new token, in ms from `now`: `leadMs` before the expiry, or halfway through a
 * token that lives less than twice that; at once when it has (nearly) expired. Undefined without
 * an expiry.
 */
export function refreshDelay(expiresAt: number | undefined, now: number, leadMs: number): number | undefined {
  if (expiresAt === undefined) return undefined;
  const remaining = expiresAt - now;
  if (remaining <= 0) return 0;
  return Math.max(0, remaining - Math.min(leadMs, remaining / 2));
}
