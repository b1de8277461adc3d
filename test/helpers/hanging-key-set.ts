/**
 * A JWKS endpoint (real HTTP on 127.0.0.1) that can hang: it accepts requests and holds them
 * unanswered until the test releases them, as an identity provider that stalls does. Two RS256
 * keys: `k1` served from the start, `k2` once published (a key the provider adds).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { onTestFinished } from 'vitest';
import { DEFAULT_CLAIMS, type TokenClaims } from './tokens.ts';
import { deferred, type Deferred } from './wait-for.ts';

export interface HangingKeySet {
  readonly url: string;
  /** A token of `kid` with the default claims overridden by `claims`, valid for an hour. */
  sign(kid: 'k1' | 'k2', claims?: TokenClaims, expiresInSeconds?: number): Promise<string>;
  /** Serves `k2` too from now on. */
  publishSecondKey(): void;
  /** From now on, requests are held unanswered until `release`. */
  hang(): void;
  /** Answers every held request, and those to come. */
  release(): void;
  /** Resolves when the next request arrives. */
  nextRequest(): Promise<void>;
  /** Requests received so far, held ones included. */
  readonly requests: number;
}

/** Starts the endpoint; it stops (held requests dropped) after the test. */
export async function startHangingKeySet(): Promise<HangingKeySet> {
  const pairs = new Map<string, { privateKey: CryptoKey; jwk: JWK }>();
  for (const kid of ['k1', 'k2']) {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    pairs.set(kid, { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } });
  }
  let served = ['k1'];
  let hanging = false;
  let requests = 0;
  let arrival: Deferred<void> | undefined;
  const held: ServerResponse[] = [];
  const answer = (response: ServerResponse) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: served.map((kid) => pairs.get(kid)?.jwk) }));
  };
  const server = createServer((_request, response) => {
    requests += 1;
    arrival?.resolve();
    if (hanging) held.push(response);
    else answer(response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    for (const response of held) response.destroy();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    async sign(kid, claims = {}, expiresInSeconds = 3600) {
      const pair = pairs.get(kid);
      if (!pair) throw new Error(`no key ${kid}`);
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...DEFAULT_CLAIMS, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuedAt(now)
        .setExpirationTime(now + expiresInSeconds)
        .sign(pair.privateKey);
    },
    publishSecondKey() {
      served = ['k1', 'k2'];
    },
    hang() {
      hanging = true;
    },
    release() {
      hanging = false;
      for (const response of held.splice(0)) answer(response);
    },
    nextRequest() {
      arrival = deferred();
      return arrival.promise;
    },
    get requests() {
      return requests;
    },
  };
}
