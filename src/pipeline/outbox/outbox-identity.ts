/**
 * What an outbox's id stands for: the table its URL reaches. Event ids derive from the outbox id and
 * the row id, so the id must stay while the rows are the same table's (a new password, another
 * login with the same rights, `application_name` or `sslmode` added: rows routed again must keep
 * their ids) and change when they are not (another database or table: its row ids repeat the old
 * ones). The URL's text tells neither; the database's identity (`db/database-identity.ts`,
 * the same on every host alias and login) and the table as the login resolves it do.
 */
import type pg from 'pg';
import { identifyDatabase } from '../../db/database-identity.ts';
import { resolveTable, type OutboxTable } from './outbox-sql.ts';

/**
 * The identity of the outbox table `table` names on the client's connection: the cluster's system
 * identifier, the database, and the table's schema and name (an unqualified name is resolved by
 * the login's search path: two logins may find two tables). A JSON array, so no name can make two
 * identities one. Rejects when the table does not exist.
 */
export async function outboxIdentity(client: pg.ClientBase, table: OutboxTable): Promise<string> {
  const database = await identifyDatabase(client);
  const resolved = await resolveTable(client, table);
  if (!resolved) throw new Error(`the table ${table.name} does not exist`);
  return JSON.stringify([database.systemIdentifier, database.database, resolved.schema, resolved.name]);
}

/**
 * Whether two URLs name the same host, port and database: how an outbox saved by an earlier version,
 * which kept no identity, is recognised when its URL changes. The stored URL cannot be asked (its
 * password may be the one just rotated away), and these URLs carry no other connection parameter
 * than `sslmode` and `application_name` (`resolvers/database-url.ts`).
 */
export function sameDatabaseLocation(a: string, b: string): boolean {
  const locationOf = (text: string): string | undefined => {
    try {
      const url = new URL(text);
      // An empty database name is the login's (libpq's default).
      const database = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username);
      return JSON.stringify([url.hostname.toLowerCase(), url.port || '5432', database]);
    } catch {
      return undefined;
    }
  };
  const location = locationOf(a);
  return location !== undefined && location === locationOf(b);
}
