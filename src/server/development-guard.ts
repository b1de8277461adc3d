import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { CorsConfig } from '../config.ts';
import type { Logger } from '../logger.ts';

/*
 * The development-mode guard: while every caller is the development principal (an admin, no token
 * needed), a request to `/graphql` or `/api/…`, or a WebSocket upgrade, is refused with 403 when
 * its `Host` is a name the server does not know (DNS rebinding), or its `Origin` is neither the
 * server's own nor one of `CORS_ORIGINS`. CORS alone would not do: a form POST runs its mutation
 * without asking, and WebSocket upgrades are not subject to CORS at all.
 */

/** What the development-mode guard allows besides the server's own origin and loopback names. */
export interface DevelopmentGuard {
  /** `CORS_ORIGINS`: origins that may call, whose host names may also be the `Host` of a request. */
  readonly origins: CorsConfig['origins'];
  /** `HOST`: when a name (not an address), requests may be addressed to it. */
  readonly host?: string | undefined;
}

/**
 * The message of the 403 a request gets from the guard; undefined when it may go on. Each refusal
 * is logged at `warn`, with what to set to allow it.
 */
export function developmentRefusal(guard: DevelopmentGuard, logger: Logger): (request: IncomingMessage, path: string) => string | undefined {
  const knownHost = hostGuard(guard);
  return (request, path) => {
    const host = request.headers.host;
    if (!knownHost(host)) {
      logger.warn({ host, path }, 'request to an unknown host name refused in development mode (DNS rebinding?)');
      return UNKNOWN_HOST_MESSAGE;
    }
    const origin = foreignOriginOf(request, guard.origins);
    if (origin === undefined) return undefined;
    logger.warn({ origin, path }, 'cross-origin request refused in development mode (list the origin in CORS_ORIGINS to allow it)');
    return FOREIGN_ORIGIN_MESSAGE;
  };
}

const FOREIGN_ORIGIN_MESSAGE =
  'Cross-origin requests are refused while every caller is the development principal (no JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL); list the origin in CORS_ORIGINS to allow it';

const UNKNOWN_HOST_MESSAGE =
  'Requests addressed to a host name other than localhost or an IP address are refused while every caller is the development principal (no JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL): a page whose DNS name points at this server could act as admin. Call it at localhost or an IP address, or allow the name by setting HOST to it or listing an origin with it in CORS_ORIGINS';

/**
 * Which `Host` headers the development-mode guard lets through: as webpack-dev-server's and Vite's
 * `allowedHosts`, against DNS rebinding — a page of a name its owner re-points at 127.0.0.1 is,
 * to the browser, of the same origin as this server (`Origin` and `Host` agree), and a same-origin
 * GET carries no `Origin` at all. Its `Host` is that name, though: only an IP address, `localhost`
 * and `*.localhost` (never resolved by DNS), a `HOST` that is a name and the host names of
 * `CORS_ORIGINS` are let through. A request without `Host` is not from a browser. With
 * `CORS_ORIGINS=*` every page may call already: every host is let through.
 */
function hostGuard(guard: DevelopmentGuard): (host: string | undefined) => boolean {
  if (guard.origins === '*') return () => true;
  const named = [...guard.origins.map((origin) => new URL(origin).host), ...(guard.host !== undefined && isIP(guard.host) === 0 ? [guard.host] : [])];
  const names = new Set(named.map(hostNameOf).filter((name) => name !== undefined));
  return (host) => {
    if (host === undefined) return true;
    const name = hostNameOf(host);
    if (name === undefined) return false;
    if (name.startsWith('[')) return name.endsWith(']') && isIP(name.slice(1, -1)) === 6;
    return isIP(name) === 4 || name === 'localhost' || name.endsWith('.localhost') || names.has(name);
  };
}

/** The host name of a `Host` header (`name`, `a.b.c.d` or `[v6]`, then maybe `:port`), lower case, without a final dot. */
function hostNameOf(host: string): string | undefined {
  const match = /^(\[[^\]]*\]|[^:[\]]+)(?::\d*)?$/.exec(host.trim().toLowerCase());
  return match?.[1]?.replace(/\.$/, '');
}

/**
 * The `Origin` of a request from a page of another origin that `allowed` does not list; undefined
 * for the server's own pages and for clients that are not browsers (no `Origin`). The server's
 * origin is the `Host` the request was sent to: the scheme is left aside, as behind a proxy that
 * ends TLS the server cannot know it.
 */
function foreignOriginOf(request: IncomingMessage, allowed: CorsConfig['origins']): string | undefined {
  const origin = request.headers.origin;
  if (origin === undefined || allowed === '*' || allowed.includes(origin)) return undefined;
  const host = request.headers.host?.toLowerCase();
  try {
    return host !== undefined && new URL(origin).host === host ? undefined : origin;
  } catch {
    // `null` (a sandboxed frame, a file) or garbage: not the server's own.
    return origin;
  }
}
