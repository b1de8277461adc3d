import type { Plugin } from 'graphql-yoga';
import type { Principal } from '../auth/principal.ts';
import type { TokenVerifier } from '../auth/token-verifier.ts';

/**
 * The caller of an HTTP request, verified before yoga reads the request's document. yoga parses,
 * validates and caches a document before it builds the context: a request without a valid token
 * would have its text parsed and kept (up to the body's megabyte, for an hour) before it is
 * refused, and its persisted query registered. Verified in `onParams` instead — before the
 * persisted-query plugin, which must come after it — a refused request (401, or 503 while the
 * key set cannot be fetched) leaves nothing behind.
 */
export interface RequestAuthentication {
  /** The yoga plugin; list it before any plugin whose `onParams` keeps something of the request. */
  readonly plugin: Plugin;
  /** The principal the plugin verified for `request`; undefined for a request it did not see. */
  principalOf(request: Request): Principal | undefined;
}

export function createRequestAuthentication(verifier: TokenVerifier): RequestAuthentication {
  // Keyed by the request: an entry lives exactly as long as the request it belongs to.
  const verified = new WeakMap<Request, Principal>();
  return {
    plugin: {
      async onParams({ request }) {
        // A refusal is thrown: yoga answers it (401 UNAUTHENTICATED) as the request's only error.
        verified.set(request, await verifier.verify(request.headers.get('authorization') ?? undefined));
      },
    },
    principalOf: (request) => verified.get(request),
  };
}
