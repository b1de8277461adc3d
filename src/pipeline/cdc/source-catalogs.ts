/**
 * The catalog entries a reader keys changes by, per environment of a source database: a mapping
 * without `key` uses its table's primary key. Read at every full load; when a read fails (the
 * source refuses new connections for a while), the entries last read are kept, never an empty set:
 * without its entry, a change would be keyed by its replica identity — every column with REPLICA
 * IDENTITY FULL — and an ordinary update would reach subscribers as a DELETED and a CREATED of
 * made-up ids. A mapped table never read is `unread`: its changes wait until it is (`cdc-source.ts`).
 */
import type { CdcBinding } from './cdc-binding.ts';
import type { TableShape } from './mapping/mapping-check.ts';
import type { DomainMapping } from './mapping/mapping.ts';

export interface EnvironmentMappings {
  readonly scope: { readonly app: string; readonly env: string };
  readonly mappings: readonly DomainMapping[];
}

export interface SourceCatalogs {
  /**
   * The bindings of a database's environments, their entries read by `read`; `error` is the
   * failure of a read whose environment got its last entries instead.
   */
  bindingsOf(
    database: string,
    environments: readonly EnvironmentMappings[],
    read: (mappings: readonly DomainMapping[]) => Promise<Map<string, TableShape>>,
  ): Promise<{ bindings: CdcBinding[]; error: unknown }>;
  /** Forgets the entries of every database not in `databases`. */
  retain(databases: Iterable<string>): void;
}

export function createSourceCatalogs(): SourceCatalogs {
  /** By database identity key, then `app/env`. */
  const known = new Map<string, Map<string, ReadonlyMap<string, TableShape>>>();
  return {
    async bindingsOf(database, environments, read) {
      const entries = known.get(database) ?? new Map<string, ReadonlyMap<string, TableShape>>();
      known.set(database, entries);
      let failure: unknown;
      const bindings = await Promise.all(
        environments.map(async ({ scope, mappings }): Promise<CdcBinding> => {
          const env = `${scope.app}/${scope.env}`;
          try {
            const tables = await read(mappings);
            entries.set(env, tables);
            return { scope, mappings, tables };
          } catch (error) {
            failure ??= error;
            const tables = entries.get(env) ?? new Map<string, TableShape>();
            const unread = new Set(mappings.map((mapping) => mapping.table).filter((table) => !tables.has(table)));
            return { scope, mappings, tables, unread };
          }
        }),
      );
      const scopes = new Set(environments.map(({ scope }) => `${scope.app}/${scope.env}`));
      for (const env of entries.keys()) if (!scopes.has(env)) entries.delete(env);
      return { bindings, error: failure };
    },
    retain(databases) {
      const keep = new Set(databases);
      for (const database of known.keys()) if (!keep.has(database)) known.delete(database);
    },
  };
}
