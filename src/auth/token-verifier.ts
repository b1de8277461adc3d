import {
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { z } from 'zod';
import type { AuthConfig } from '../config.ts';
import { ErrorCode, TributaryError } from '../errors.ts';
import { hmacKeyResolver } from './hmac-keys.ts';
import { DEVELOPMENT_PRINCIPAL, MAX_TENANT_LENGTH, type Principal } from './principal.ts';
import { createRemoteKeySet, type RemoteKeySetOptions } from './remote-key-set.ts';

/** Turns the bearer value a client presents into a principal, or refuses it. */
export interface TokenVerifier {
  /** `development` accepts everyone as the development principal; `jwt` verifies signatures. */
  readonly mode: AuthConfig['mode'];
  /**
   * How far past its `exp` (and before its `nbf`) a token is still accepted, in ms: the clocks of
   * the issuer and of this server may differ. Sockets apply it to their token's expiry alike.
   */
  readonly clockToleranceMs: number;
  /**
   * @param authorization the `Authorization` value (`Bearer …`) or `undefined` when absent.
   * @throws TributaryError UNAUTHENTICATED with a message that says why, never revealing keys;
   *   UNAVAILABLE when the token's key cannot be known because the key set cannot be fetched.
   */
  verify(authorization: string | undefined): Promise<Principal>;
}

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;

/** Algorithms are pinned per key type: a token cannot choose how it is checked. */
const HMAC_ALGORITHMS = ['HS256'];
const ASYMMETRIC_ALGORITHMS = ['RS256', 'ES256'];

/**
 * The largest NumericDate (seconds) whose moment a `Date` can hold (±8.64e15 ms, ECMA-262
 * §21.4.1.1). jose only checks that `exp`, `nbf` and `iat` are numbers: `exp: 1e13` (or `1e400`,
 * which parses as Infinity) would pass it and make an invalid Date of the socket's expiry.
 */
const MAX_NUMERIC_DATE = 8.64e12;

const numericDate = (claim: string) =>
  z
    .number({ message: `claim '${claim}' must be a number of seconds` })
    .min(-MAX_NUMERIC_DATE, `claim '${claim}' is out of range`)
    .max(MAX_NUMERIC_DATE, `claim '${claim}' is out of range`)
    .optional();

/**
 * Control characters (C0, DEL, C1) and lone surrogates: Postgres text cannot hold U+0000 (an
 * INSERT of it fails, and a tenant reaches shared batches such as the analytics minute), a lone
 * surrogate has no UTF-8 form, and none belongs in an identifier or a scope key.
 */
const UNFIT_TEXT = /[\p{Cc}\p{Cs}]/u;
const FIT_TEXT_RULE = 'must not contain control characters or lone surrogates';

const identifier = (claim: string) =>
  z
    .string({ message: `claim '${claim}' must be a non-empty string` })
    .min(1, `claim '${claim}' must be a non-empty string`)
    .refine((value) => !UNFIT_TEXT.test(value), `claim '${claim}' ${FIT_TEXT_RULE}`);

const entries = (claim: string, max: number) =>
  z
    .array(
      z.string().refine((value) => !UNFIT_TEXT.test(value), `claim '${claim}' entries ${FIT_TEXT_RULE}`),
      { message: `claim '${claim}' must be an array of strings` },
    )
    .max(max)
    .optional();

const claimsSchema = z.object({
  sub: identifier('sub'),
  app: identifier('app'),
  env: identifier('env'),
  tenant: z
    .string({ message: "claim 'tenant' must be a string" })
    .min(1, "claim 'tenant' must not be empty")
    .max(MAX_TENANT_LENGTH, `claim 'tenant' must be at most ${MAX_TENANT_LENGTH} characters`)
    .refine((value) => !UNFIT_TEXT.test(value), `claim 'tenant' ${FIT_TEXT_RULE}`)
    .optional(),
  roles: entries('roles', 100),
  permissions: entries('permissions', 1000),
  exp: numericDate('exp'),
  nbf: numericDate('nbf'),
  iat: numericDate('iat'),
});

export interface TokenVerifierOptions {
  readonly auth: AuthConfig;
  /** Allowed clock difference for `exp`/`nbf`, in seconds. @default 5 */
  readonly clockToleranceSeconds?: number;
  /** How the key set of `JWKS_URL` is fetched and kept (tests shorten its times). */
  readonly keySet?: RemoteKeySetOptions;
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { auth } = options;
  if (auth.mode === 'development') {
    return { mode: 'development', clockToleranceMs: 0, verify: () => Promise.resolve(DEVELOPMENT_PRINCIPAL) };
  }

  const hmacKey = hmacKeyResolver(auth);
  const remoteKeys = auth.jwksUrl === undefined ? undefined : createRemoteKeySet(new URL(auth.jwksUrl), options.keySet);
  const algorithms = [...(hmacKey ? HMAC_ALGORITHMS : []), ...(remoteKeys ? ASYMMETRIC_ALGORITHMS : [])];

  // The key is chosen by the algorithm the token names, and only among the pinned ones; an HS256
  // secret then by the token's `kid` (hmac-keys.ts).
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (hmacKey && HMAC_ALGORITHMS.includes(header.alg)) return hmacKey(header);
    if (remoteKeys && ASYMMETRIC_ALGORITHMS.includes(header.alg)) return remoteKeys(header, token);
    throw new joseErrors.JOSEAlgNotAllowed(`algorithm "${header.alg}" is not accepted`);
  };
  const clockToleranceSeconds = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  const verifyOptions: JWTVerifyOptions = {
    algorithms,
    clockTolerance: clockToleranceSeconds,
    ...(auth.issuer !== undefined && { issuer: auth.issuer }),
    ...(auth.audience !== undefined && { audience: auth.audience }),
  };

  return {
    mode: 'jwt',
    clockToleranceMs: clockToleranceSeconds * 1000,
    async verify(authorization) {
      const token = bearerToken(authorization);
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, verifyOptions));
      } catch (error) {
        if (error instanceof TributaryError) throw error;
        throw new TributaryError(ErrorCode.UNAUTHENTICATED, describeJoseError(error), { cause: error });
      }
      return toPrincipal(payload);
    },
  };
}

/** Whether `verify` refused the token because it has expired (past `exp` and the clock tolerance). */
export function isExpiredTokenError(error: unknown): boolean {
  return error instanceof TributaryError && error.code === ErrorCode.UNAUTHENTICATED && error.cause instanceof joseErrors.JWTExpired;
}

function bearerToken(authorization: string | undefined): string {
  if (authorization === undefined || authorization.trim() === '') {
    throw new TributaryError(ErrorCode.UNAUTHENTICATED, 'Authentication required: send "Authorization: Bearer <token>"');
  }
  const match = /^Bearer[ ]+([A-Za-z0-9_\-.]+)\s*$/i.exec(authorization);
  if (!match?.[1]) {
    throw new TributaryError(ErrorCode.UNAUTHENTICATED, 'Malformed authorization: expected "Bearer <token>"');
  }
  return match[1];
}

function toPrincipal(payload: JWTPayload): Principal {
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) {
    throw new TributaryError(ErrorCode.UNAUTHENTICATED, `Invalid token: ${parsed.error.issues[0]?.message ?? 'bad claims'}`);
  }
  const claims = parsed.data;
  return Object.freeze({
    subject: claims.sub,
    app: claims.app,
    env: claims.env,
    tenant: claims.tenant,
    roles: Object.freeze([...(claims.roles ?? [])]),
    permissions: Object.freeze([...(claims.permissions ?? [])]),
    expiresAt: claims.exp === undefined ? undefined : claims.exp * 1000,
  });
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'Token expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return error.claim === 'nbf' ? 'Token not yet valid' : `Invalid token: claim '${error.claim}' ${error.reason}`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'Invalid token: algorithm not accepted';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'Invalid token: signature verification failed';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'Invalid token: no matching key';
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) return 'Invalid token: malformed';
  return 'Invalid token';
}
