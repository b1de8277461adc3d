/**
 * The endpoints as every instance holds them: reloaded when any changes (checked every
 * `refreshMs`, or at once after a change made on this instance), so the routing tap selects
 * without a query per event.
 */
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import { createKeyedCoalescer } from '../coordination/keyed-serial.ts';
import { endpointsVersion, getEndpoint, listAllEndpoints, type SigningEndpoint } from './endpoint-store.ts';

export interface EndpointCache extends EndpointScopes {
  /** Every endpoint, as last loaded. */
  current(): readonly SigningEndpoint[];
  /** One endpoint as last loaded (changes reach every instance within the refresh period). */
  byId(id: string): SigningEndpoint | undefined;
  /** One endpoint, loaded now (a delivery must sign with the secrets in effect). */
  fresh(id: string): Promise<SigningEndpoint | undefined>;
  /** Reloads when anything changed, reading after this call (what a change just committed is seen). */
  refresh(): Promise<void>;
  /**
   * After a change to the endpoint committed on this instance (an admin's): reloads at once, so this
   * instance routes and delivers by it from the answer on. Never rejects: the change is made
   * whatever happens here, so a reload that fails is logged (the endpoint's id), and the change
   * reaches this instance with the next periodic reload — within `refreshMs`, as it reaches every
   * other instance.
   */
  changed(endpointId: string): Promise<void>;
  close(): void;
}

/** The endpoints of one app and environment: all an event of theirs can go to. */
export interface EndpointScopes {
  /** The endpoints of `app`/`env` as last loaded, in the order they were loaded (none: empty). */
  inScope(app: string, env: string): readonly SigningEndpoint[];
}

const NONE: readonly SigningEndpoint[] = [];

/**
 * `endpoints` indexed by app and env, once per load: routing an event looks at its environment's
 * endpoints only — at 49,000 endpoints in other environments, a look at every one cost ~1 ms of the
 * main thread per routed event.
 */
export function endpointScopes(endpoints: readonly SigningEndpoint[]): EndpointScopes {
  const byApp = new Map<string, Map<string, SigningEndpoint[]>>();
  for (const endpoint of endpoints) {
    let byEnv = byApp.get(endpoint.app);
    if (!byEnv) byApp.set(endpoint.app, (byEnv = new Map<string, SigningEndpoint[]>()));
    const list = byEnv.get(endpoint.env);
    if (list) list.push(endpoint);
    else byEnv.set(endpoint.env, [endpoint]);
  }
  return { inScope: (app, env) => byApp.get(app)?.get(env) ?? NONE };
}

export async function createEndpointCache(options: { readonly db: Queryable; readonly refreshMs: number; readonly logger: Logger }): Promise<EndpointCache> {
  const { db } = options;
  let endpoints: readonly SigningEndpoint[] = [];
  let byId = new Map<string, SigningEndpoint>();
  let scopes = endpointScopes(endpoints);
  let version: string | undefined;
  // A refresh after a change must read after it: a load already running may have read before.
  const coalescer = createKeyedCoalescer();

  const load = async () => {
    // The version before the endpoints: a change committed between the two reads is in the list
    // and raised the version past the one kept, so the next load reads it again — never the other
    // way round, a list without it kept under its version.
    const next = await endpointsVersion(db);
    if (next === version) return;
    endpoints = await listAllEndpoints(db);
    byId = new Map(endpoints.map((endpoint) => [endpoint.id, endpoint]));
    scopes = endpointScopes(endpoints);
    version = next;
  };
  const refresh = () => coalescer.request('endpoints', load);
  await refresh();
  const timer = setInterval(() => {
    refresh().catch((error: unknown) => options.logger.warn({ err: error }, 'webhook endpoints could not be reloaded'));
  }, options.refreshMs);
  timer.unref();

  return {
    current: () => endpoints,
    byId: (id) => byId.get(id),
    inScope: (app, env) => scopes.inScope(app, env),
    fresh: (id) => getEndpoint(db, id),
    refresh,
    changed: (endpointId) =>
      refresh().catch((error: unknown) => {
        options.logger.warn({ err: error, endpoint: endpointId }, 'webhook endpoints not reloaded after a change made here; this instance has it within the refresh period');
      }),
    close: () => clearInterval(timer),
  };
}
