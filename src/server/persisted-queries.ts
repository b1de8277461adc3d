import { createHash } from 'node:crypto';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.ts';

/**
 * Automatic persisted queries, Apollo's protocol
 * (https://www.apollographql.com/docs/apollo-server/performance/apq): a client sends
 * `extensions.persistedQuery = { version: 1, sha256Hash }` without the query; a hash the server
 * does not know answers PERSISTED_QUERY_NOT_FOUND (HTTP 200, as Apollo Server does), and the
 * client sends the query with the hash once, which is checked and kept. Over HTTP (GET and POST)
 * and over graphql-ws (where the protocol requires a `query` string: send `""` with the hash).
 *
 * The store is per process and bounded: at most `maxEntries` queries, least recently used
 * evicted first, each at most `maxQueryBytes` (a larger one runs but is not kept). A query known
 * on one instance may be unknown on the next: the client simply sends it again.
 */
export interface PersistedQueries {
  /**
   * The query a request runs: its own, or the persisted one its hash names. `undefined`
   * resolution means the request uses no persisted query. @throws GraphQLError
   * PERSISTED_QUERY_NOT_FOUND, or BAD_USER_INPUT for a bad version or a hash that does not match.
   */
  resolve(query: string | undefined, extensions: unknown): string | undefined;
  readonly size: number;
}

export interface PersistedQueriesOptions {
  /** Queries kept at most; 0 turns APQ off (hashes are ignored). */
  readonly maxEntries: number;
  /** Largest query kept, in bytes. @default 65536 */
  readonly maxQueryBytes?: number;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function createPersistedQueries(options: PersistedQueriesOptions): PersistedQueries {
  const maxQueryBytes = options.maxQueryBytes ?? 64 * 1024;
  // A Map keeps insertion order: re-inserting on use makes its first key the least recently used.
  const queries = new Map<string, string>();
  return {
    resolve(query, extensions) {
      if (options.maxEntries === 0) return query;
      const persisted = persistedQueryOf(extensions);
      if (persisted === undefined) return query;
      if (persisted.version !== 1) throw badInput('Unsupported persisted query version (only 1 is)');
      const hash = persisted.sha256Hash;
      if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) throw badInput('persistedQuery.sha256Hash must be 64 lower-case hex digits');
      if (query === undefined || query === '') {
        const known = queries.get(hash);
        if (known === undefined) {
          throw new GraphQLError('PersistedQueryNotFound', { extensions: { code: ErrorCode.PERSISTED_QUERY_NOT_FOUND } });
        }
        queries.delete(hash);
        queries.set(hash, known);
        return known;
      }
      if (createHash('sha256').update(query).digest('hex') !== hash) throw badInput('provided sha does not match query');
      if (Buffer.byteLength(query) <= maxQueryBytes) {
        queries.delete(hash);
        queries.set(hash, query);
        for (const oldest of queries.keys()) {
          if (queries.size <= options.maxEntries) break;
          queries.delete(oldest);
        }
      }
      return query;
    },
    get size() {
      return queries.size;
    },
  };
}

/** The yoga plugin: resolves the query before yoga checks that one is there ("Must provide query string."). */
export function usePersistedQueries(store: PersistedQueries): Plugin {
  return {
    onParams({ params, setParams }) {
      // A query that is not a string (JSON lets a client send a number or an object) is left to
      // yoga's own check of the params, which answers it as without a hash: 400 BAD_REQUEST.
      const received: unknown = params.query;
      if (received != null && typeof received !== 'string') return;
      // A refusal is thrown: yoga answers it as the request's only error (and runs no later check).
      const query = store.resolve(received ?? undefined, params.extensions);
      if (query !== params.query) setParams({ ...params, query });
    },
  };
}

function persistedQueryOf(extensions: unknown): { version?: unknown; sha256Hash?: unknown } | undefined {
  if (typeof extensions !== 'object' || extensions === null) return undefined;
  const persisted = (extensions as { persistedQuery?: unknown }).persistedQuery;
  return typeof persisted === 'object' && persisted !== null ? persisted : undefined;
}

function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } });
}
