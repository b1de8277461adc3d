/**
 * The connections of every source URL the CDC service knows, made by the injected factory (one
 * `SourceConnections` per URL text) with each URL's database identity, resolved once. A URL's
 * connections are disposed once nothing uses it any more (`release`).
 *
 * A URL that fails (its identity cannot be asked, or a catalog read on it fails) is not tried
 * again until its backoff ends: a source database that no longer answers (a host that accepts
 * connections and says nothing waits out the whole connect timeout) must not hold up, at every
 * reload, the environments whose databases answer. One identity attempt per URL runs at a time.
 */
import { createBackoff, type Backoff } from '../coordination/backoff.ts';
import { within } from '../coordination/within.ts';
import type { TableShape } from './mapping/mapping-check.ts';
import { mappingTable, type DomainMapping } from './mapping/mapping.ts';
import { describeTable } from './mapping/table-catalog.ts';
import { identifyDatabase, type DatabaseIdentity } from './wal/replication-names.ts';
import type { SourceConnectionFactory, SourceConnections } from './wal/source-connections.ts';

export interface SourceEndpoints {
  /** The connections of `url`, made on first use. */
  connectionsOf(url: string): SourceConnections;
  /**
   * The identity of the database `url` reaches, asked once per URL; rejects while it cannot be
   * reached (at once, with the last error, until the URL's backoff ends).
   */
  identityOf(url: string): Promise<DatabaseIdentity>;
  /**
   * The identity of `url` if it is known, or learned within `waitMs`; else undefined, and the
   * attempt goes on without the caller (`onSettled` says when it ends). Waits only for an attempt
   * it starts itself for a URL that never failed: an unreachable database holds a caller up once.
   */
  knownIdentity(url: string, waitMs: number): Promise<DatabaseIdentity | undefined>;
  /** Remembers an identity learned on one of `url`'s connections. */
  noteIdentity(url: string, identity: DatabaseIdentity): void;
  /**
   * Runs `use` on the connections of `url` unless the URL is backing off (then rejects at once
   * with its last error); a failure starts or lengthens the backoff, a success ends it.
   */
  guarded<T>(url: string, use: (connections: SourceConnections) => Promise<T>): Promise<T>;
  /** The earliest end of a failed URL's backoff (ms since the epoch); Infinity while none failed. */
  nextRetryAt(): number;
  /** Disposes the connections of every URL not in `inUse` (without waiting for them to close). */
  release(inUse: Iterable<string>): Promise<void>;
  /** Disposes everything, and waits until every pool closed. Idempotent. */
  dispose(): Promise<void>;
}

export interface SourceEndpointsOptions {
  /** Called when an identity attempt a caller stopped waiting for ends, whether it succeeded or not. */
  readonly onSettled?: () => void;
  /** First and longest wait before a failed URL is tried again, in ms. @default 1000 and 60000 */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

interface Endpoint {
  readonly connections: SourceConnections;
  identity: DatabaseIdentity | undefined;
  attempt: { readonly promise: Promise<DatabaseIdentity>; abandoned: boolean } | undefined;
  failure: { readonly error: unknown; readonly retryAt: number; readonly backoff: Backoff } | undefined;
}

export function createSourceEndpoints(connect: SourceConnectionFactory, options: SourceEndpointsOptions = {}): SourceEndpoints {
  const retry = options.retry ?? { initialMs: 1000, maxMs: 60_000 };
  const endpoints = new Map<string, Endpoint>();
  const endpointOf = (url: string) => {
    let endpoint = endpoints.get(url);
    if (!endpoint) endpoints.set(url, (endpoint = { connections: connect(url), identity: undefined, attempt: undefined, failure: undefined }));
    return endpoint;
  };
  const backingOff = (endpoint: Endpoint) => endpoint.failure !== undefined && Date.now() < endpoint.failure.retryAt;
  const failed = (endpoint: Endpoint, error: unknown) => {
    const backoff = endpoint.failure?.backoff ?? createBackoff(retry);
    endpoint.failure = { error, retryAt: Date.now() + backoff.next(), backoff };
  };
  /** The attempt under way for `endpoint`, or a new one. */
  const attemptOf = (endpoint: Endpoint) => {
    if (endpoint.attempt) return endpoint.attempt;
    const attempt = {
      abandoned: false,
      promise: endpoint.connections.withClient(identifyDatabase).then(
        (identity) => {
          endpoint.identity = identity;
          endpoint.failure = undefined;
          return identity;
        },
        (error: unknown) => {
          failed(endpoint, error);
          throw error;
        },
      ),
    };
    endpoint.attempt = attempt;
    void attempt.promise
      .catch(() => undefined)
      .finally(() => {
        endpoint.attempt = undefined;
        if (attempt.abandoned) options.onSettled?.();
      });
    return attempt;
  };
  /** Pools being closed: one whose connection attempt to a silent host waits out its timeout must not hold up a reload. */
  const closing = new Set<Promise<void>>();
  const release = (inUse: Iterable<string>): Promise<void> => {
    const used = new Set(inUse);
    for (const [url, endpoint] of endpoints) {
      if (used.has(url)) continue;
      endpoints.delete(url);
      const disposed = endpoint.connections.dispose().finally(() => closing.delete(disposed));
      closing.add(disposed);
    }
    return Promise.resolve();
  };
  return {
    connectionsOf: (url) => endpointOf(url).connections,
    async identityOf(url) {
      const endpoint = endpointOf(url);
      if (endpoint.identity) return endpoint.identity;
      if (!endpoint.attempt && backingOff(endpoint)) throw endpoint.failure!.error;
      return attemptOf(endpoint).promise;
    },
    async knownIdentity(url, waitMs) {
      const endpoint = endpointOf(url);
      if (endpoint.identity) return endpoint.identity;
      if (!endpoint.attempt && backingOff(endpoint)) return undefined;
      const firstTry = !endpoint.attempt && endpoint.failure === undefined;
      const attempt = attemptOf(endpoint);
      if (firstTry) {
        try {
          return await within(attempt.promise, waitMs, 'no answer yet');
        } catch {
          // Failed (tried again after its backoff), or still trying.
        }
      }
      // Not waited for (any longer): the caller hears when it ends.
      attempt.abandoned = true;
      return endpoint.identity;
    },
    noteIdentity(url, identity) {
      const endpoint = endpointOf(url);
      endpoint.identity = identity;
      endpoint.failure = undefined;
    },
    async guarded(url, use) {
      const endpoint = endpointOf(url);
      if (backingOff(endpoint)) throw endpoint.failure!.error;
      try {
        const result = await use(endpoint.connections);
        endpoint.failure = undefined;
        return result;
      } catch (error) {
        failed(endpoint, error);
        throw error;
      }
    },
    nextRetryAt() {
      let earliest = Infinity;
      for (const endpoint of endpoints.values()) if (endpoint.failure && !endpoint.attempt) earliest = Math.min(earliest, endpoint.failure.retryAt);
      return earliest;
    },
    release,
    async dispose() {
      await release([]);
      await Promise.all(closing);
    },
  };
}

/** Catalog entries of the mapped tables that exist, by the mapping's `table`, read over one pooled connection. */
export async function describeMappedTables(connections: SourceConnections, mappings: readonly DomainMapping[]): Promise<Map<string, TableShape>> {
  const tables = new Map<string, TableShape>();
  if (mappings.length === 0) return tables;
  await connections.withClient(async (client) => {
    for (const mapping of mappings) {
      const shape = await describeTable(client, mappingTable(mapping));
      if (shape) tables.set(mapping.table, shape);
    }
  });
  return tables;
}
