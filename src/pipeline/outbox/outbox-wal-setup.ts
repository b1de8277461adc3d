/**
 * What the WAL reader of an outbox will do to its database's publication, checked when the outbox
 * is set (`outbox-admin.ts`), with the login of the outbox's URL, which the reader of a database
 * that has no CDC source connects with (`cdc/cdc-service.ts`). The reader streams the publication
 * `tributary_…` derived from the database's identity (`publicationOf`, handed in: CDC names it): it creates
 * it when missing (`ensurePublication`: CREATE on the database), then adds the outbox table to it
 * (`ensurePublicationIncludes`: owning the publication and the table). A role with REPLICATION
 * alone would be accepted and its reader would never start — nothing routed, the poller stopped,
 * the cause in `outboxStatus.lastError` only. Not checked when a CDC source names the same database
 * (`outbox-admin.ts`): the reader then uses that source's login and publication.
 */
import pg from 'pg';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { identifyDatabase, type DatabaseIdentity } from '../../db/database-identity.ts';
import { resolveTable, type OutboxTable } from './outbox-sql.ts';

interface SetupRow {
  role: string;
  database: string;
  can_create: boolean;
  exists: boolean;
  all_tables: boolean;
  published: boolean;
  owns_publication: boolean;
  owns_table: boolean;
  table_owner: string;
  owner_is_superuser: boolean;
}

/**
 * Rejects (MISCONFIGURED, the statements to run) when the WAL reader, on this client's login, could
 * not create the publication or add the table to it; resolves when the publication publishes the
 * table already, or the login may make it do so.
 */
export async function assertWalPublicationPossible(client: pg.ClientBase, table: OutboxTable, publicationOf: (identity: DatabaseIdentity) => string): Promise<void> {
  const publicationName = publicationOf(await identifyDatabase(client));
  const resolved = await resolveTable(client, table);
  if (!resolved) throw new Error(`the table ${table.name} does not exist`);
  const { rows } = await client.query<SetupRow>(
    `SELECT current_user AS role, current_database() AS database,
            has_database_privilege(current_database(), 'CREATE') AS can_create,
            p.oid IS NOT NULL AS exists, coalesce(p.puballtables, false) AS all_tables,
            EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = $1 AND t.schemaname = $2 AND t.tablename = $3) AS published,
            coalesce(pg_has_role(p.pubowner, 'USAGE'), false) AS owns_publication,
            pg_has_role(c.relowner, 'USAGE') AS owns_table, pg_get_userbyid(c.relowner) AS table_owner,
            coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner), false) AS owner_is_superuser
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_publication p ON p.pubname = $1
      WHERE n.nspname = $2 AND c.relname = $3`,
    [publicationName, resolved.schema, resolved.name],
  );
  const row = rows[0];
  if (!row) throw new Error(`the table ${table.name} does not exist`);
  const problem = publicationProblem(row, publicationName, resolved);
  if (problem === undefined) return;
  throw new TributaryError(ErrorCode.MISCONFIGURED, problem.message, {
    details: { reason: problem.reason, publication: publicationName, role: row.role },
  });
}

function publicationProblem(row: SetupRow, publication: string, table: { schema: string; name: string }): { reason: string; message: string } | undefined {
  if (row.exists && (row.all_tables || row.published)) return undefined;
  const quotedPublication = pg.escapeIdentifier(publication);
  const quotedTable = `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`;
  const role = `role "${row.role}"`;
  const tableName = `${table.schema}.${table.name}`;
  const tableOwner = `the table's owner ("${row.table_owner}")`;
  if (row.exists) {
    if (row.owns_publication && row.owns_table) return undefined;
    const lacks = [!row.owns_publication && 'the publication', !row.owns_table && 'the table'].filter(Boolean).join(' nor ');
    return {
      reason: 'PUBLICATION_ALTER_NOT_PERMITTED',
      message:
        `the WAL reader reads the outbox through publication "${publication}", which does not publish ${tableName}, and ${role} may not add it ` +
        `(it owns neither ${lacks}; Postgres needs both): as the owner of both (or a superuser) run ` +
        `ALTER PUBLICATION ${quotedPublication} ADD TABLE ${quotedTable};`,
    };
  }
  if (row.can_create && row.owns_table) return undefined;
  const missing = [
    !row.can_create && `CREATE on database "${row.database}" (to create the publication)`,
    !row.owns_table && `ownership of ${tableName} (to publish it; ${tableOwner} owns it)`,
  ].filter(Boolean);
  const grants = [
    !row.can_create && `GRANT CREATE ON DATABASE ${pg.escapeIdentifier(row.database)} TO ${pg.escapeIdentifier(row.role)};`,
    // Membership in the owner's role keeps the writers' rights as they are (the table is not given
    // away); never a superuser's role, whose membership would hand over every object it owns.
    !row.owns_table &&
      (row.owner_is_superuser
        ? `ALTER TABLE ${quotedTable} OWNER TO ${pg.escapeIdentifier(row.role)}; (then GRANT INSERT on it, and USAGE on its id sequence, to the roles that write it)`
        : `GRANT ${pg.escapeIdentifier(row.table_owner)} TO ${pg.escapeIdentifier(row.role)};`),
  ].filter(Boolean);
  return {
    reason: 'PUBLICATION_CREATE_NOT_PERMITTED',
    message:
      `the WAL reader reads the outbox through publication "${publication}", which does not exist, and ${role} lacks ${missing.join(' and ')}: ` +
      `as a superuser (or ${tableOwner}, with CREATE on the database) run CREATE PUBLICATION ${quotedPublication} FOR TABLE ${quotedTable} WITH (publish_via_partition_root = true); ` +
      `or give the role what it lacks: ${grants.join(' ')}`,
  };
}
