/**
 * The configured environments and WAL-mode outboxes grouped by the database their URL reaches
 * (`wal/replication-names.ts`): one reader per group. Every URL's identity is asked at once, and a
 * URL not answering within a short wait is left out of this grouping (its attempt goes on: see
 * `source-endpoints.ts`), so that a database that no longer answers does not hold up the others.
 */
import type { Logger } from '../../logger.ts';
import type { CdcSourceRecord } from './cdc-store.ts';
import type { SourceEndpoints } from './source-endpoints.ts';
import { identityKey, type DatabaseIdentity } from './wal/replication-names.ts';

export interface SourceGroup<O> {
  readonly identity: DatabaseIdentity;
  readonly rows: CdcSourceRecord[];
  readonly outboxes: O[];
}

/** How long a URL asked for the first time is waited for, in ms. */
export const IDENTITY_WAIT_MS = 1000;

/**
 * Groups by the database's identity key. `complete` is false when some URL's database is not
 * known yet: only a complete grouping tells that no environment reads a database any more.
 */
export async function groupByDatabase<O extends { readonly scope: { readonly app: string; readonly env: string }; readonly databaseUrl: string }>(
  endpoints: SourceEndpoints,
  sources: readonly CdcSourceRecord[],
  outboxes: readonly O[],
  logger: Logger,
): Promise<{ groups: Map<string, SourceGroup<O>>; complete: boolean }> {
  const urls = [...new Set([...sources, ...outboxes].map((row) => row.databaseUrl))];
  const identities = new Map(await Promise.all(urls.map(async (url) => [url, await endpoints.knownIdentity(url, IDENTITY_WAIT_MS)] as const)));
  const groups = new Map<string, SourceGroup<O>>();
  let complete = true;
  const groupOf = (scope: { readonly app: string; readonly env: string }, url: string) => {
    const identity = identities.get(url);
    if (!identity) {
      complete = false;
      logger.warn({ app: scope.app, env: scope.env }, 'could not reach a CDC source database yet; retried in the background');
      return undefined;
    }
    const key = identityKey(identity);
    const group = groups.get(key) ?? { identity, rows: [], outboxes: [] };
    groups.set(key, group);
    return group;
  };
  for (const row of sources) groupOf(row, row.databaseUrl)?.rows.push(row);
  for (const row of outboxes) groupOf(row.scope, row.databaseUrl)?.outboxes.push(row);
  return { groups, complete };
}
