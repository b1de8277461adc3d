/**
 * Signed test tokens and a real JWKS endpoint (an HTTP server on 127.0.0.1) for the RS256/ES256
 * path. Nothing here fakes verification: the server checks these tokens with jose as it would
 * check a production token.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { onTestFinished } from 'vitest';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

export interface TokenClaims extends JWTPayload {
  app?: string;
  env?: string;
  tenant?: string;
  roles?: string[];
  permissions?: string[];
}

export const DEFAULT_CLAIMS: TokenClaims = {
  sub: 'user-1',
  app: 'shop',
  env: 'prod',
  tenant: 'tenant-a',
  roles: [],
  permissions: ['crm.contacts.read'],
};

export interface SignOptions {
  /** HS256 secret. @default TEST_SECRET */
  readonly secret?: string;
  /** Seconds from now; negative for an expired token. @default 3600 */
  readonly expiresInSeconds?: number;
  /** Seconds from now before which the token is not valid. */
  readonly notBeforeInSeconds?: number;
}

/** An HS256 token with the default claims overridden by `claims`. */
export async function signHs256(claims: TokenClaims = {}, options: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...DEFAULT_CLAIMS, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSeconds ?? 3600));
  if (options.notBeforeInSeconds !== undefined) jwt.setNotBefore(now + options.notBeforeInSeconds);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}

/** A token with `alg: none` and no signature, as an attacker would craft it. */
export function unsignedToken(claims: TokenClaims = {}): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ ...DEFAULT_CLAIMS, ...claims, iat: now, exp: now + 3600 })}.`;
}

export interface KeySetServer {
  /** URL of the JWKS document. */
  readonly url: string;
  sign(alg: 'RS256' | 'ES256', claims?: TokenClaims, options?: Omit<SignOptions, 'secret'>): Promise<string>;
  /** Signs with a key the set does not serve until `publishExtraKey` (a key the provider adds). */
  signWithExtraKey(claims?: TokenClaims): Promise<string>;
  /** Serves the extra key too from now on. */
  publishExtraKey(): void;
  /** Answers every request with this HTTP status (e.g. 503) instead of the set, or serves it again (`undefined`). */
  failWith(status: number | undefined): void;
  /** Requests served so far, failed ones included. */
  readonly fetches: number;
}

/** Serves a JWKS with one RS256 and one ES256 public key over real HTTP; stops after the test. */
export async function startKeySetServer(): Promise<KeySetServer> {
  const keys: Record<'RS256' | 'ES256', { privateKey: CryptoKey; jwk: JWK }> = {
    RS256: await keyPair('RS256', 'rsa-1'),
    ES256: await keyPair('ES256', 'ec-1'),
  };
  const extra = await keyPair('RS256', 'rsa-2');
  let served = [keys.RS256.jwk, keys.ES256.jwk];
  let failure: number | undefined;
  let fetches = 0;
  const server = createServer((_request, response) => {
    fetches += 1;
    if (failure !== undefined) {
      response.writeHead(failure);
      response.end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: served }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async sign(alg, claims = {}, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...DEFAULT_CLAIMS, ...claims })
        .setProtectedHeader({ alg, kid: keys[alg].jwk.kid })
        .setIssuedAt(now)
        .setExpirationTime(now + (options.expiresInSeconds ?? 3600))
        .sign(keys[alg].privateKey);
    },
    async signWithExtraKey(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...DEFAULT_CLAIMS, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: extra.jwk.kid })
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(extra.privateKey);
    },
    publishExtraKey() {
      served = [...served, extra.jwk];
    },
    failWith(status) {
      failure = status;
    },
    get fetches() {
      return fetches;
    },
  };
}

async function keyPair(alg: 'RS256' | 'ES256', kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}
