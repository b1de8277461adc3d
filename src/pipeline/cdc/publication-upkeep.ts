/**
 * The source's publication around the admin's calls (`wal/publication.ts` says what it holds):
 * - `setCdcSource` on a database whose publication is FOR ALL TABLES (an earlier version's, or a
 *   DBA's) uses it as it is, and warns of the tables whose UPDATE and DELETE Postgres refuses for it;
 * - `removeCdcSource` drops the publication once nothing of this deployment reads the database
 *   and no other slot of the database may stream it, when Tributary created it (its comment says
 *   so); otherwise it warns, naming the publication and the statement that drops it.
 * The source save and removal answer no warnings (`CdcSource` has no such field): they are logged.
 */
import pg from 'pg';
import type { Logger } from '../../logger.ts';
import type { CdcSourceRecord, CdcStore } from './cdc-store.ts';
import type { SourceEndpoints } from './source-endpoints.ts';
import { groupByDatabase, IDENTITY_WAIT_MS } from './source-groups.ts';
import type { WalOutboxCatalog } from './wal-outboxes.ts';
import { allTablesWarning, OWN_PUBLICATION_COMMENT, unidentifiedPublishedTables } from './wal/publication.ts';
import { defaultReplicationNames, identifyDatabase, identityKey, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';

/**
 * The identity of `client`'s database, after logging `allTablesWarning` of its publication
 * (`publicationName`, null: the derived one) if it has one FOR ALL TABLES.
 */
export async function identifyWarningOfPublication(client: pg.ClientBase, publicationName: string | null, logger: Logger, scope: { app: string; env: string }): Promise<DatabaseIdentity> {
  const identity = await identifyDatabase(client);
  const publication = publicationName ?? defaultReplicationNames(identity).publicationName;
  const warning = allTablesWarning(publication, await unidentifiedPublishedTables(client, publication));
  if (warning !== undefined) logger.warn({ app: scope.app, env: scope.env, publication, warning }, 'CDC source set with warnings');
  return identity;
}

export interface PublicationRemovalOptions {
  readonly endpoints: SourceEndpoints;
  readonly store: CdcStore;
  readonly outboxes: WalOutboxCatalog | undefined;
  readonly logger: Logger;
  /** The slot and publication this deployment reads the database with. */
  readonly namesOf: (identity: DatabaseIdentity, source: CdcSourceRecord) => ReplicationNames;
}

/** After `removed` was removed (and the readers reloaded): drops its publication when it is unused and Tributary's, else warns. */
export async function dropUnusedPublication(options: PublicationRemovalOptions, removed: CdcSourceRecord): Promise<void> {
  const { endpoints, logger } = options;
  const identity = await endpoints.knownIdentity(removed.databaseUrl, IDENTITY_WAIT_MS);
  if (!identity) {
    logger.warn({ publication: removed.publicationName }, 'the removed CDC source database cannot be reached: its publication is left; drop it there by hand once nothing reads it');
    return;
  }
  const { slotName, publicationName } = options.namesOf(identity, removed);
  const outboxRows = (await options.outboxes?.list()) ?? [];
  const { groups, complete } = await groupByDatabase(endpoints, await options.store.listSources(), outboxRows, logger);
  // Another environment or outbox still reads the database: the publication is in use.
  if (groups.has(identityKey(identity))) return;
  const drop = `DROP PUBLICATION ${pg.escapeIdentifier(publicationName)};`;
  await endpoints.connectionsOf(removed.databaseUrl).withClient(async (client) => {
    const { rows } = await client.query<{ comment: string | null; slots: string[] }>(
      `SELECT obj_description(p.oid, 'pg_publication') AS comment,
              array(SELECT slot_name::text FROM pg_replication_slots
                     WHERE database = current_database() AND slot_type = 'logical' ORDER BY 1) AS slots
         FROM pg_publication p WHERE p.pubname = $1`,
      [publicationName],
    );
    const row = rows[0];
    if (!row) return;
    // Another deployment's slot, or anyone's, may stream it: only its owner can tell. So may this
    // deployment's own, retired but not dropped yet: a source set again on this database claims
    // it back, and decoding its unread WAL needs the publication as it was (Postgres looks it up
    // by name as of each change: recreated, it is "another" publication and decoding fails).
    if (row.comment !== OWN_PUBLICATION_COMMENT || row.slots.length > 0 || !complete) {
      const own = row.slots.includes(slotName);
      const why =
        row.comment !== OWN_PUBLICATION_COMMENT
          ? 'Tributary did not create it'
          : own
            ? `this deployment's slot ${slotName} is not dropped yet, and a source set again on this database would read on from it`
            : row.slots.length > 0
              ? `other slots of the database may stream it (${row.slots.join(', ')})`
              : 'some CDC source databases cannot be reached to tell whether they are this one';
      logger.warn({ publication: publicationName, slots: row.slots, statement: drop }, `the publication of the removed CDC source is left (${why}): once nothing reads it, run ${drop}`);
      return;
    }
    try {
      await client.query(drop);
      logger.info({ publication: publicationName }, 'publication of the removed CDC source dropped');
    } catch (error) {
      logger.warn({ err: error, publication: publicationName, statement: drop }, `the publication of the removed CDC source could not be dropped: run ${drop} as its owner`);
    }
  });
}
