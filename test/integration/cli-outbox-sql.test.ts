/**
 * `npm run outbox:sql [table]` (`node src/cli/outbox-sql.ts`), run as a process: `--help` (or
 * `-h`) prints its usage and exits 0, as `npm run token -- --help` does, instead of being taken
 * for a table name; an option it does not know, or a second table, is refused with a line that
 * says where the usage is; a table prints its DDL.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runProcess } from '../helpers/run-process.ts';

const SCRIPT = fileURLToPath(new URL('../../src/cli/outbox-sql.ts', import.meta.url));


const outboxSql = (args: readonly string[]) => runProcess(process.execPath, [SCRIPT, ...args]);

describe('npm run outbox:sql', () => {
  it.each([['--help'], ['-h']])('prints its usage with %s and exits 0', async (flag) => {
    const run = await outboxSql([flag]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^Usage: npm run -s outbox:sql -- \[table\]\n/);
    expect(run.stdout).toContain('event_outbox');
    expect(run.stdout).toContain('schema.name');
  });

  it('prints the DDL of the table given, or of event_outbox', async () => {
    const named = await outboxSql(['app.orders_outbox']);
    expect(named).toMatchObject({ code: 0, stderr: '' });
    expect(named.stdout).toContain('CREATE TABLE IF NOT EXISTS "app"."orders_outbox" (');
    const byDefault = await outboxSql([]);
    expect(byDefault).toMatchObject({ code: 0, stderr: '' });
    expect(byDefault.stdout).toContain('CREATE TABLE IF NOT EXISTS "event_outbox" (');
  });

  it.each([
    [['--tabel', 'x'], /^outbox:sql: Unknown option '--tabel'.* \(npm run outbox:sql -- --help\)\n$/],
    [['a', 'b'], /^outbox:sql: one table at most, got 2: a, b \(npm run outbox:sql -- --help\)\n$/],
  ])('refuses %j with a line pointing to --help and exit code 2', async (args, said) => {
    const run = await outboxSql(args);
    expect(run).toMatchObject({ code: 2, stdout: '' });
    expect(run.stderr).toMatch(said);
  });

  it('refuses a name that is not a table with what a name may be, and exit code 1', async () => {
    const run = await outboxSql(['Event_Outbox']);
    expect(run).toMatchObject({ code: 1, stdout: '' });
    expect(run.stderr).toMatch(/^outbox:sql: Invalid table: use name or schema\.name/);
  });
});
