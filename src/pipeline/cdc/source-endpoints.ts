/**
 * The connections of every source URL the CDC service knows, made by the injected factory (one
 * `SourceConnections` per URL text) with each URL's database identity, resolved once. A URL's
 * connections are disposed once nothing uses it any more (`release`).
 */
import type { TableShape } from './mapping/mapping-check.ts';
import { mappingTable, type DomainMapping } from './mapping/mapping.ts';
import { describeTable } from './mapping/table-catalog.ts';
import { identifyDatabase, type DatabaseIdentity } from './wal/replication-names.ts';
import type { SourceConnectionFactory, SourceConnections } from './wal/source-connections.ts';

export interface SourceEndpoints {
  /** The connections of `url`, made on first use. */
  connectionsOf(url: string): SourceConnections;
  /** The identity of the database `url` reaches, asked once per URL; rejects while it cannot be reached. */
  identityOf(url: string): Promise<DatabaseIdentity>;
  /** Remembers an identity learned on one of `url`'s connections. */
  noteIdentity(url: string, identity: DatabaseIdentity): void;
  /** Disposes the connections of every URL not in `inUse`. */
  release(inUse: Iterable<string>): Promise<void>;
  /** Disposes everything. Idempotent. */
  dispose(): Promise<void>;
}

export function createSourceEndpoints(connect: SourceConnectionFactory): SourceEndpoints {
  const endpoints = new Map<string, { connections: SourceConnections; identity: DatabaseIdentity | undefined }>();
  const endpointOf = (url: string) => {
    let endpoint = endpoints.get(url);
    if (!endpoint) endpoints.set(url, (endpoint = { connections: connect(url), identity: undefined }));
    return endpoint;
  };
  const release = async (inUse: Iterable<string>) => {
    const used = new Set(inUse);
    for (const [url, endpoint] of endpoints) {
      if (used.has(url)) continue;
      endpoints.delete(url);
      await endpoint.connections.dispose();
    }
  };
  return {
    connectionsOf: (url) => endpointOf(url).connections,
    async identityOf(url) {
      const endpoint = endpointOf(url);
      endpoint.identity ??= await endpoint.connections.withClient(identifyDatabase);
      return endpoint.identity;
    },
    noteIdentity(url, identity) {
      endpointOf(url).identity = identity;
    },
    release,
    dispose: () => release([]),
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
