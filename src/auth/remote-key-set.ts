import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, type JWTVerifyGetKey } from 'jose';
import { ErrorCode, TributaryError } from '../errors.ts';

/**
 * The identity provider's key set (`JWKS_URL`), kept through the provider's outages.
 *
 * jose's remote set fetches the keys again once its copy is 10 minutes old, and fails every
 * verification while that fetch fails — a provider down for a second at that moment would refuse
 * every valid token, and `UNAUTHENTICATED` (close 4403) makes clients give up for good. Here:
 * - keys older than `maxAgeMs` are fetched again in the background: tokens signed with them are
 *   verified at once with the keys held, never held up by the fetch (only a verification with no
 *   keys yet, or with a `kid` the keys lack, waits for it);
 * - a failed refresh keeps the keys already known: tokens signed with them are verified as before,
 *   and the next refresh is tried `RETRY_AFTER_FAILURE_MS` later, not at every verification;
 * - a token whose key is not known (none fetched yet, or a `kid` the provider may have just added)
 *   while the provider cannot be reached is answered `UNAVAILABLE`: try again later, not "invalid".
 *
 * Fetching, the timeout, redirects refused and the set's shape are jose's.
 */
export interface RemoteKeySetOptions {
  /** Age after which the keys are fetched again, in ms. @default 600000 (jose's) */
  readonly maxAgeMs?: number;
  /** Shortest time between fetches for a key the set lacks, in ms. @default 30000 (jose's) */
  readonly cooldownMs?: number;
  /** Time before a failed fetch is tried again, in ms. @default 10000 */
  readonly retryAfterFailureMs?: number;
  /** One fetch's timeout, in ms. @default 5000 (jose's) */
  readonly timeoutMs?: number;
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number;
  /** Told when a fetch of the set ends, whether it succeeded (logs, tests); must not throw. @default nothing */
  readonly onFetched?: (ok: boolean) => void;
}

const MAX_AGE_MS = 600_000;
const COOLDOWN_MS = 30_000;
const RETRY_AFTER_FAILURE_MS = 10_000;

export function createRemoteKeySet(url: URL, options: RemoteKeySetOptions = {}): JWTVerifyGetKey {
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? MAX_AGE_MS;
  const cooldownMs = options.cooldownMs ?? COOLDOWN_MS;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? RETRY_AFTER_FAILURE_MS;
  // jose's set does the fetching only: its own refresh-on-use is never reached (we read `jwks()`).
  const remote = createRemoteJWKSet(url, { ...(options.timeoutMs !== undefined && { timeoutDuration: options.timeoutMs }) });
  let known: { readonly getKey: JWTVerifyGetKey; readonly fetchedAt: number } | undefined;
  let failedAt: number | undefined;
  let fetching: Promise<boolean> | undefined;

  /** Fetches the set (one fetch at a time); resolves whether it succeeded, never rejects. */
  const refresh = (): Promise<boolean> =>
    (fetching ??= remote
      .reload()
      .then(() => {
        const jwks = remote.jwks();
        if (jwks === undefined) return false;
        known = { getKey: createLocalJWKSet(jwks), fetchedAt: now() };
        failedAt = undefined;
        return true;
      })
      .catch(() => {
        failedAt = now();
        return false;
      })
      .then((ok) => {
        fetching = undefined;
        options.onFetched?.(ok);
        return ok;
      }));

  const mayFetch = () => failedAt === undefined || now() - failedAt >= retryAfterFailureMs;
  const unavailable = () =>
    new TributaryError(ErrorCode.UNAVAILABLE, 'Could not verify the token: the key set (JWKS_URL) cannot be reached; try again later');

  return async (header, token) => {
    if (known === undefined) {
      if (mayFetch()) await refresh();
      if (known === undefined) throw unavailable();
    } else if (now() - known.fetchedAt >= maxAgeMs && mayFetch()) {
      // Stale keys are fetched again in the background and verify meanwhile: a provider that
      // accepts and never answers would otherwise hold every verification for the fetch's timeout.
      void refresh();
    }
    const held = known;
    try {
      return await held.getKey(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      // A key the provider may have added since: fetch again (or wait for the fetch under way), at most once per cooldown.
      if (now() - held.fetchedAt < cooldownMs) throw error;
      if (!mayFetch() || !(await refresh())) throw unavailable();
      return known.getKey(header, token);
    }
  };
}
