/**
 * `npm run token` (`node src/cli/token.ts`), run as a process with the server's settings: the
 * token it prints — alone on standard output — is accepted by a real server with those settings,
 * with the claims asked for; settings that cannot mint a token, and bad options, are refused with
 * a line that says what to do, nothing on standard output, and a non-zero exit.
 */
import { fileURLToPath } from 'node:url';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { runProcess, type ProcessRun } from '../helpers/run-process.ts';
import { TEST_SECRET } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';

const TOKEN_SCRIPT = fileURLToPath(new URL('../../src/cli/token.ts', import.meta.url));
const OTHER_SECRET = 'another-secret-that-is-at-least-32-bytes!!';

/** Runs the command with `env` alone (and PATH), as a shell would with those variables exported. */
const token = (args: readonly string[], env: Record<string, string>) => runProcess(process.execPath, [TOKEN_SCRIPT, ...args], { env });

/** The token alone on standard output, one line. */
function printedToken(run: ProcessRun): string {
  expect(run).toMatchObject({ code: 0, stderr: '' });
  expect(run.stdout).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
  return run.stdout.trim();
}

const VIEWER = '{ viewer { subject app env tenant roles permissions expiresAt } }';

describe('npm run token', () => {
  it('prints a token the server accepts, with the tenant, permissions, subject, scope and lifetime asked for', async () => {
    const settings = { JWT_SECRET: TEST_SECRET, JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'tributary' };
    const server = await startTestServer(settings);
    const minted = printedToken(
      await token(['--tenant', 'acme', '--permission', 'crm.contacts.read', '--permission', 'chat.join', '--sub', 'ada', '--app', 'shop', '--env', 'prod', '--ttl', '30m'], settings),
    );
    const claims = decodeJwt(minted);
    expect(claims).toMatchObject({ iss: 'https://issuer.test', aud: 'tributary' });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(1800);

    const { status, body } = await postGraphQL(server.graphqlUrl, { query: VIEWER }, { authorization: `Bearer ${minted}` });
    expect(status).toBe(200);
    expect(body.data?.['viewer']).toEqual({
      subject: 'ada',
      app: 'shop',
      env: 'prod',
      tenant: 'acme',
      roles: [],
      permissions: ['crm.contacts.read', 'chat.join'],
      expiresAt: new Date((claims.exp ?? 0) * 1000).toISOString(),
    });
  });

  it('by default: an hour, subject cli, app and env default; --admin without --tenant is an application-wide admin', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const minted = printedToken(await token(['--admin'], { JWT_SECRET: TEST_SECRET }));
    const claims = decodeJwt(minted);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);
    const { body } = await postGraphQL(server.graphqlUrl, { query: VIEWER }, { authorization: `Bearer ${minted}` });
    expect(body.data?.['viewer']).toMatchObject({ subject: 'cli', app: 'default', env: 'default', tenant: null, roles: ['admin'], permissions: [] });
  });

  it('signs with the key of JWT_SECRETS that --kid names, and asks for --kid when several could sign', async () => {
    const settings = { JWT_SECRETS: `old:${TEST_SECRET},new:${OTHER_SECRET}` };
    const server = await startTestServer(settings);
    const minted = printedToken(await token(['--kid', 'new', '--tenant', 'acme'], settings));
    expect(decodeProtectedHeader(minted)).toMatchObject({ alg: 'HS256', kid: 'new' });
    const { body } = await postGraphQL(server.graphqlUrl, { query: VIEWER }, { authorization: `Bearer ${minted}` });
    expect(body.data?.['viewer']).toMatchObject({ tenant: 'acme' });

    expect(await token(['--tenant', 'acme'], settings)).toEqual({
      code: 2,
      stdout: '',
      stderr: 'token: JWT_SECRETS holds several keys and no JWT_SECRET: say which one signs with --kid <key id>\n',
    });
    expect(await token(['--kid', 'newest'], settings)).toMatchObject({ code: 2, stdout: '', stderr: 'token: --kid "newest" is not a key id of JWT_SECRETS\n' });
  });

  it('refuses settings it cannot sign with, saying what to do', async () => {
    const development = await token(['--tenant', 'acme'], {});
    expect(development).toMatchObject({ code: 1, stdout: '' });
    expect(development.stderr).toMatch(/^token: neither JWT_SECRET, JWT_SECRETS nor JWT_JWKS_URL is set: a server with these settings runs in development mode and takes no token /);
    // One secret, made once: a fresh `openssl rand` in each shell makes two, and the server refuses every token.
    expect(development.stderr).toContain(
      'To use tokens, give the server and this command the same JWT_SECRET, at least 32 bytes: make it once, in the server\'s shell before npm start — export JWT_SECRET="$(openssl rand -base64 32)" — and export that same value in this shell (echo "$JWT_SECRET" in the server\'s shows it): another openssl rand here makes another secret, whose tokens the server refuses\n',
    );

    const keySetOnly = await token(['--tenant', 'acme'], { JWT_JWKS_URL: 'https://idp.example/.well-known/jwks.json' });
    expect(keySetOnly).toMatchObject({ code: 1, stdout: '' });
    expect(keySetOnly.stderr).toMatch(/^token: only JWT_JWKS_URL is set: .*get them from the provider\. To mint tokens here as well, give the server and this command a JWT_SECRET/);

    expect(await token([], { JWT_SECRET: 'too-short' })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'token: Invalid configuration: JWT_SECRET must be at least 32 bytes long (HS256 needs a 256-bit secret)\n',
    });
  });

  it.each([
    [['--tenat', 'acme'], /^token: Unknown option '--tenat'.* \(npm run token -- --help\)\n$/],
    [['--tenant'], /^token: Option '--tenant <value>' argument missing \(npm run token -- --help\)\n$/],
    [['--tenant', ''], /^token: --tenant must not be empty\n$/],
    [['--permission', 'crm.contacts'], /^token: --permission "crm\.contacts" grants nothing: a permission is <name>\.<action>, the action one of read, publish, write, join, broadcast \(e\.g\. crm\.contacts\.read\)\n$/],
    [['--ttl', '1 week'], /^token: --ttl "1 week" is not a time: a positive number of seconds, or with s, m, h or d \(90s, 30m, 1h, 7d\)\n$/],
    [['--ttl', '0'], /^token: --ttl "0" is not a time/],
    [['--tenant', 'a'.repeat(201)], /^token: the server would refuse this token: Invalid token: claim 'tenant' must be at most 200 characters\n$/],
    [['--kid', 'k1'], /^token: --kid needs JWT_SECRETS \(key id:secret pairs\); with JWT_SECRET alone, leave --kid out\n$/],
  ])('refuses %j with a clear line and exit code 2', async (args, said) => {
    const run = await token(args, { JWT_SECRET: TEST_SECRET });
    expect(run).toMatchObject({ code: 2, stdout: '' });
    expect(run.stderr).toMatch(said);
  });

  it('prints its usage with --help', async () => {
    const run = await token(['--help'], {});
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^Usage: npm run -s token -- \[options\]\n/);
    expect(run.stdout).toContain('--permission <p>');
  });
});
