/**
 * A Postgres identifier quoted for SQL text — the statements Tributary runs on a source table and
 * the fixes it tells an administrator to run (`"my ""odd"" table"`). Same as `pg.escapeIdentifier`,
 * without loading the driver into the pure mapping checks.
 */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
