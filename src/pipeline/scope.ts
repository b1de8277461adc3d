import type { Principal } from '../auth/principal.ts';

/**
 * Where an event or a channel lives: an application's environment, and optionally one tenant.
 * Scope is taken from a verified principal (or a mapping), never from client input, and it is
 * part of every channel and log key — isolation is structural, not a filter.
 */
export interface Scope {
  readonly app: string;
  readonly env: string;
  /** `undefined`: application-wide (no tenant). */
  readonly tenant: string | undefined;
}

export function scopeOf(principal: Principal): Scope {
  return { app: principal.app, env: principal.env, tenant: principal.tenant };
}

/**
 * A key that two different scopes can never share: each part is percent-encoded, so a `:` or
 * any other separator inside a claim cannot forge another scope's key.
 */
export function scopeKey(scope: Scope): string {
  return `${encodeURIComponent(scope.app)}:${encodeURIComponent(scope.env)}:${scope.tenant === undefined ? '' : `t=${encodeURIComponent(scope.tenant)}`}`;
}

/** The inverse of `scopeKey`; undefined for text that is not one. */
export function parseScopeKey(key: string): Scope | undefined {
  const [app, env, tenant, extra] = key.split(':');
  if (app === undefined || env === undefined || tenant === undefined || extra !== undefined) return undefined;
  if (tenant !== '' && !tenant.startsWith('t=')) return undefined;
  try {
    return {
      app: decodeURIComponent(app),
      env: decodeURIComponent(env),
      tenant: tenant === '' ? undefined : decodeURIComponent(tenant.slice(2)),
    };
  } catch {
    return undefined;
  }
}
