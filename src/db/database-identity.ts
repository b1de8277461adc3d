/**
 * Which database a connection reaches, whatever its URL says: the cluster's system identifier (set
 * by initdb, the same on every host alias, user or query string) and the database's name. CDC keys
 * its readers and derives its slot names by it (`pipeline/cdc/wal/replication-names.ts`); the
 * outbox keys its tables' ids by it (`pipeline/outbox/outbox-identity.ts`).
 */
import type pg from 'pg';

export interface DatabaseIdentity {
  /** `pg_control_system().system_identifier`, as text (it exceeds 2^53). */
  readonly systemIdentifier: string;
  readonly database: string;
}

/** A stable text key of the identity: `{system identifier}/{database name}`. */
export function identityKey(identity: DatabaseIdentity): string {
  return `${identity.systemIdentifier}/${identity.database}`;
}

/** The identity of the database the client is connected to. */
export async function identifyDatabase(client: pg.ClientBase): Promise<DatabaseIdentity> {
  const { rows } = await client.query<{ system_identifier: string; database: string }>(
    'SELECT system_identifier::text AS system_identifier, current_database() AS database FROM pg_control_system()',
  );
  const row = rows[0]!;
  return { systemIdentifier: row.system_identifier, database: row.database };
}
