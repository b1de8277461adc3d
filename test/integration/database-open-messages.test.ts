/**
 * What opening the platform database says at start. DATABASE_URL that cannot be connected to:
 * where it tried (host and port, the URL without its password) and what to check, against a real
 * Postgres refusing the login or lacking the database, and a port nobody listens on — not the
 * requests' "unavailable right now; retry shortly", which sends an operator to wait for a URL that
 * is wrong. The embedded database: a line before PGlite's silent initdb on a first start only.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { openDatabase } from '../../src/db/open.ts';
import { createLogger } from '../../src/logger.ts';
import { describeFailure } from '../../src/start/failure.ts';
import { freePort } from '../helpers/free-port.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';

const silent = createLogger({ level: 'silent' });

/** The start's text for `url` (as `Tributary failed to start:` prints it after the colon). */
async function refusal(url: string): Promise<{ readonly code: unknown; readonly text: string }> {
  const error: unknown = await openDatabase({ databaseUrl: url, dataDir: 'memory://' }, silent).then(
    () => expect.unreachable('the database opened'),
    (failure: unknown) => failure,
  );
  return { code: (error as { code?: unknown }).code, text: describeFailure(error, { stack: false }) };
}

describe('opening DATABASE_URL at start', () => {
  it('names the host and port nobody listens on, masks the password, and says the connection was refused', async () => {
    const port = await freePort();
    const { code, text } = await refusal(`postgres://tributary:s3cret@127.0.0.1:${port}/platform`);
    expect(code).toBe('UNAVAILABLE');
    expect(text).toBe(
      `Could not connect to the database at DATABASE_URL 127.0.0.1:${port} (postgres://tributary:***@127.0.0.1:${port}/platform): the connection was refused — is Postgres running there, and are the host and port right?\n` +
        `caused by: Error: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
  });

  it('says a login refused (a user that does not exist) as such, and a missing database as such', async () => {
    const database = await createTestDatabase();
    const target = `${new URL(database.url).hostname}:${new URL(database.url).port}`;

    // The run's Postgres trusts its local users: an unknown user is the login it refuses.
    const stranger = new URL(database.url);
    stranger.username = 'nobody_here';
    stranger.password = 'not-the-password';
    const login = await refusal(stranger.href);
    expect(login.code).toBe('MISCONFIGURED');
    expect(login.text).toBe(
      `Could not connect to the database at DATABASE_URL ${target} (postgres://nobody_here:***@${target}/${database.name}): the login was refused — check the user name and password in the URL\n` +
        'caused by: error: role "nobody_here" does not exist',
    );

    const missing = new URL(database.url);
    missing.pathname = `/${database.name}_missing`;
    const absent = await refusal(missing.href);
    expect(absent.code).toBe('MISCONFIGURED');
    expect(absent.text).toMatch(/: that database does not exist — create it, or fix its name in the URL\ncaused by: error: database "t_[0-9a-f]+_missing" does not exist$/);
  });

  it('says a host name that does not resolve', async () => {
    const { code, text } = await refusal('postgres://tributary@db.invalid:6543/platform');
    expect(code).toBe('MISCONFIGURED');
    expect(text.split('\n')[0]).toBe('Could not connect to the database at DATABASE_URL db.invalid:6543 (postgres://tributary@db.invalid:6543/platform): the host name does not resolve — is it spelt right?');
  });
});

describe('opening the embedded database', () => {
  // PGlite's initdb on an empty folder: what a first start pays (15–40 s here).
  it('says it is creating the database before a first start’s initdb, and not when the folder holds one', { timeout: 120_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tributary-first-start-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    // Looked at synchronously, at the moment the line is written.
    const hasDatabase = () => existsSync(join(dataDir, 'PG_VERSION'));
    const sink = captureLogs();
    /** Whether the folder held a database when each line was written. */
    const heldAtLine: boolean[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => (heldAtLine.push(hasDatabase()), sink.write(line)) } });

    const db = await openDatabase({ databaseUrl: undefined, dataDir }, logger);
    await db.close();
    expect(sink.lines).toEqual([expect.objectContaining({ level: 30, dataDir, msg: `creating the embedded database in ${dataDir} (first start; takes a while)` })]);
    expect(heldAtLine).toEqual([false]);
    expect(hasDatabase()).toBe(true);

    // Opened again, and a copy of an initialised folder: nothing to say.
    await (await openDatabase({ databaseUrl: undefined, dataDir }, logger)).close();
    const copy = await pgliteDataDir();
    onTestFinished(() => rm(copy, { recursive: true, force: true }));
    await (await openDatabase({ databaseUrl: undefined, dataDir: copy }, logger)).close();
    expect(sink.lines).toHaveLength(1);
  });
});
