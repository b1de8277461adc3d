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
 *   while the provider cannot be reached is answered `UNAVAILABLE`: try again later, not "invalid";
 * - a `kid` the keys held lack is fetched for at most once per `cooldownMs` (one fetch at a time,
 *   nobody waits past the fetch under way). Inside the cooldown such a token is `UNAVAILABLE`
 *   (`retryAfterMs`: the cooldown's end) until a fetch started after its `kid` was first seen: a
 *   key rotated in during the seconds after someone else's unknown `kid` caused a fetch is not
 *   refused. Only a fetch made after the `kid` was first seen that still lacks it refuses it
 *   (`JWKSNoMatchingKey`, UNAUTHENTICATED).
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
/** Unknown `kid`s whose first sighting is remembered (the oldest is forgotten past it). */
const MAX_UNKNOWN_KIDS = 1_000;
/** Longest `kid` remembered as it is (a longer one is remembered by its start). */
const MAX_KID_LENGTH = 256;

export function createRemoteKeySet(url: URL, options: RemoteKeySetOptions = {}): JWTVerifyGetKey {
  const now = options.now ?? Date.now;
  const maxAgeMs = options.maxAgeMs ?? MAX_AGE_MS;
  const cooldownMs = options.cooldownMs ?? COOLDOWN_MS;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? RETRY_AFTER_FAILURE_MS;
  // jose's set does the fetching only: its own refresh-on-use is never reached (we read `jwks()`).
  const remote = createRemoteJWKSet(url, { ...(options.timeoutMs !== undefined && { timeoutDuration: options.timeoutMs }) });
  /** The keys held; `fetch`: the number of the fetch that brought them (fetches are numbered from 1). */
  let known: { readonly getKey: JWTVerifyGetKey; readonly fetchedAt: number; readonly fetch: number } | undefined;
  let failedAt: number | undefined;
  let fetching: Promise<boolean> | undefined;
  /** Fetches started so far. */
  let started = 0;
  /** An unknown kid → the fetches started before it was first seen (a later fetch may hold it). */
  const unknownKids = new Map<string, number>();

  /** Fetches the set (one fetch at a time); resolves whether it succeeded, never rejects. */
  const refresh = (): Promise<boolean> => {
    if (fetching) return fetching;
    const fetch = (started += 1);
    return (fetching = remote
      .reload()
      .then(() => {
        const jwks = remote.jwks();
        if (jwks === undefined) return false;
        known = { getKey: createLocalJWKSet(jwks), fetchedAt: now(), fetch };
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
  };

  const mayFetch = () => failedAt === undefined || now() - failedAt >= retryAfterFailureMs;
  const unavailable = () =>
    new TributaryError(ErrorCode.UNAVAILABLE, 'Could not verify the token: the key set (JWKS_URL) cannot be reached; try again later');

  /** The fetches started before this kid was first seen (`arrival` for a kid seen now). */
  const firstSeen = (kid: string, arrival: number): number => {
    const seen = unknownKids.get(kid);
    if (seen !== undefined) return seen;
    if (unknownKids.size >= MAX_UNKNOWN_KIDS) unknownKids.delete(unknownKids.keys().next().value ?? '');
    unknownKids.set(kid, arrival);
    return arrival;
  };

  /**
   * A token whose key the set held lacks. A key the provider may have added since: the set is
   * fetched again (or the fetch under way awaited), at most once per cooldown. Inside the
   * cooldown, the token is refused only when a fetch started after its kid was first seen lacked
   * it; until such a fetch it is UNAVAILABLE (try again once the cooldown is over), never
   * "invalid" for a key not fetched for yet.
   */
  const lookUpUnknown: (arrival: number, ...args: Parameters<JWTVerifyGetKey>) => Promise<Awaited<ReturnType<JWTVerifyGetKey>>> = async (arrival, header, token) => {
    const kid = (header.kid ?? '').slice(0, MAX_KID_LENGTH);
    const seen = firstSeen(kid, arrival);
    const held = known;
    if (held === undefined) throw unavailable();
    if (fetching !== undefined || now() - held.fetchedAt >= cooldownMs) {
      if (fetching === undefined && !mayFetch()) throw unavailable();
      if (!(await refresh()) || known === undefined) throw unavailable();
      try {
        const key = await known.getKey(header, token);
        unknownKids.delete(kid);
        return key;
      } catch (error) {
        if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      }
    }
    const latest = known ?? held;
    if (latest.fetch > seen) throw new joseErrors.JWKSNoMatchingKey();
    const retryAfterMs = Math.max(1, latest.fetchedAt + cooldownMs - now());
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'Could not verify the token yet: its key was not in the key set (JWKS_URL) when last fetched, which is fetched again shortly; try again later', {
      details: { retryAfterMs },
    });
  };

  return async (header, token) => {
    const arrival = started;
    if (known === undefined) {
      if (mayFetch()) await refresh();
      if (known === undefined) throw unavailable();
    } else if (now() - known.fetchedAt >= maxAgeMs && mayFetch()) {
      // Stale keys are fetched again in the background and verify meanwhile: a provider that
      // accepts and never answers would otherwise hold every verification for the fetch's timeout.
      void refresh();
    }
    try {
      return await known.getKey(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      return lookUpUnknown(arrival, header, token);
    }
  };
}
