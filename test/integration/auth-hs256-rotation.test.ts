/**
 * HS256 key rotation: `JWT_SECRETS=kid:secret,…` beside (or instead of) `JWT_SECRET`. A token's
 * `kid` header picks its one secret; a token without a `kid` is checked with `JWT_SECRET` only.
 * The rolling restart of a rotation is played through with the real verifier (jose), then one
 * server checks the same rules over HTTP and at `connection_init`; a bad setting stops the real
 * entry point with one line that prints no secret.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createTokenVerifier } from '../../src/auth/token-verifier.ts';
import { ConfigError, loadConfig, SETTING_NAMES, type AuthConfig } from '../../src/config.ts';
import { unknownSettings } from '../../src/config-unknown.ts';
import { MAIN_SCRIPT } from '../helpers/main-process.ts';
import { DEFAULT_CLAIMS, type TokenClaims } from '../helpers/tokens.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, openSocket } from '../helpers/ws-client.ts';

const OLD = 'the-old-secret-of-at-least-32-bytes-long!';
const NEW = 'the-new-secret-of-at-least-32-bytes-long!';
const NEXT = 'the-next-secret-of-at-least-32-bytes-long';

/** An HS256 token signed with `secret`, with `kid` in its header when given. */
async function sign(secret: string, kid: unknown, claims: TokenClaims = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...DEFAULT_CLAIMS, ...claims })
    .setProtectedHeader({ alg: 'HS256', ...(kid !== undefined && { kid: kid as string }) })
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(secret));
}

/** The subject the verifier of `env` accepts the token as, or the message it refuses it with. */
async function outcome(env: Record<string, string>, token: string): Promise<string> {
  const verifier = createTokenVerifier({ auth: loadConfig(env).auth });
  return verifier.verify(`Bearer ${token}`).then(
    (principal) => `accepted as ${principal.subject}`,
    (error: unknown) => `refused: ${(error as Error).message}`,
  );
}

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected loadConfig to throw');
}

describe('HS256 key rotation (JWT_SECRETS)', () => {
  it('plays a rotation through its rolling restarts: every instance agrees on every token the issuer signs meanwhile', async () => {
    const before = { JWT_SECRET: OLD };
    const during = { JWT_SECRET: OLD, JWT_SECRETS: `new:${NEW}` };
    const after = { JWT_SECRETS: `new:${NEW}` };
    const next = { JWT_SECRETS: `new:${NEW},next:${NEXT}` };
    const oldToken = await sign(OLD, undefined, { sub: 'old' });
    const newToken = await sign(NEW, 'new', { sub: 'new' });
    const nextToken = await sign(NEXT, 'next', { sub: 'next' });

    // While instances restart from `before` to `during`, the issuer keeps signing with the old secret: both accept it.
    expect(await outcome(before, oldToken)).toBe('accepted as old');
    expect(await outcome(during, oldToken)).toBe('accepted as old');
    // Once every instance runs `during`, the issuer signs with the new secret and its kid.
    expect(await outcome(during, newToken)).toBe('accepted as new');
    // When the old tokens have expired, JWT_SECRET goes: a token without a kid is refused from then on.
    expect(await outcome(after, newToken)).toBe('accepted as new');
    expect(await outcome(after, oldToken)).toBe('refused: Invalid token: a kid header is required');
    // The next rotation adds a key id beside the current one; no JWT_SECRET needed.
    expect(await outcome(next, newToken)).toBe('accepted as new');
    expect(await outcome(next, nextToken)).toBe('accepted as next');
    expect(await outcome(after, nextToken)).toBe('refused: Invalid token: unknown key id (kid)');
  });

  it('checks a token with a kid against that kid’s secret only: not JWT_SECRET, not another kid’s', async () => {
    const env = { JWT_SECRET: OLD, JWT_SECRETS: `new:${NEW},next:${NEXT}` };
    // Signed with the old secret (or the next one) but naming "new": a kid is not a hint to be tried past.
    expect(await outcome(env, await sign(OLD, 'new'))).toBe('refused: Invalid token: signature verification failed');
    expect(await outcome(env, await sign(NEXT, 'new'))).toBe('refused: Invalid token: signature verification failed');
    expect(await outcome(env, await sign(OLD, 'gone'))).toBe('refused: Invalid token: unknown key id (kid)');
    // A kid that is not a string (jose does not check its type) names no key.
    expect(await outcome(env, await sign(NEW, 7))).toBe('refused: Invalid token: unknown key id (kid)');
    // Without a kid, JWT_SECRET's and only JWT_SECRET's.
    expect(await outcome(env, await sign(NEW, undefined))).toBe('refused: Invalid token: signature verification failed');
  });

  it('keeps JWT_SECRET alone as it was: one secret for every HS256 token, its kid not looked at', async () => {
    expect(await outcome({ JWT_SECRET: OLD }, await sign(OLD, 'whatever', { sub: 'a' }))).toBe('accepted as a');
    expect(await outcome({ JWT_SECRET: OLD }, await sign(OLD, undefined, { sub: 'b' }))).toBe('accepted as b');
    expect(loadConfig({ JWT_SECRET: OLD }).auth).toEqual({ mode: 'jwt', secret: OLD });
  });

  it('reads JWT_SECRETS as JWT verification: not development mode, enough for production', () => {
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRETS: ` a:${NEW} , b:${NEXT}:with:colons ,` });
    expect(config.auth).toEqual<AuthConfig>({ mode: 'jwt', secrets: [{ kid: 'a', secret: NEW }, { kid: 'b', secret: `${NEXT}:with:colons` }] });
    expect(config.host).toBe('0.0.0.0');
  });

  it.each<[string, string]>([
    [NEW, 'must be kid:secret pairs separated by commas: entry 1 of 1 is not kid:secret (a secret cannot contain a comma)'],
    [`a:${NEW},b:${NEXT.slice(0, 20)},${NEXT.slice(20)}`, 'entry 2 of 3: the secret must be at least 32 bytes long (HS256 needs a 256-bit secret)'],
    [`a:${NEW},b:short-secret`, 'entry 2 of 2: the secret must be at least 32 bytes long (HS256 needs a 256-bit secret)'],
    [`a:${NEW},:${NEXT}`, 'entry 2 of 2: the key id must be 1–128 letters, digits or . _ ~ + / = -'],
    [`a b:${NEW}`, 'entry 1 of 1: the key id must be 1–128 letters, digits or . _ ~ + / = -'],
    [`a:${NEW},b:${NEXT},a:${OLD}`, 'entries 1 and 3 have the same key id (each kid must name one secret)'],
    [`a:${NEW},b:${NEW}`, 'entries 1 and 2 have the same secret (a rotation needs a new secret under the new key id)'],
    [' , ', 'must list at least one kid:secret'],
  ])('refuses JWT_SECRETS=%s at start with one line that names the entry, never its text', (value, message) => {
    const line = configError({ JWT_SECRETS: value });
    expect(line).toBe(`Invalid configuration: JWT_SECRETS ${message}`);
    for (const secret of [NEW, NEXT, OLD, NEXT.slice(0, 20), NEXT.slice(20), 'short-secret']) expect(line).not.toContain(secret);
  });

  it('knows JWT_SECRETS as a setting, and suggests it, not JWT_SECRET, for a name one edit away from it', () => {
    expect(unknownSettings({ JWT_SECRET: OLD, JWT_SECRETS: `a:${NEW}` }, SETTING_NAMES)).toEqual([]);
    expect(unknownSettings({ JWT_SECRETES: `a:${NEW}`, JWT_SECRT: OLD }, SETTING_NAMES)).toEqual([
      { name: 'JWT_SECRETES', suggestion: 'JWT_SECRETS' },
      { name: 'JWT_SECRT', suggestion: 'JWT_SECRET' },
    ]);
  });

  it('stops the real entry point on a bad JWT_SECRETS with exit code 1 and one line that prints no secret', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tributary-main-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [MAIN_SCRIPT], {
      env: { PATH: process.env['PATH'] ?? '', DATA_DIR: dataDir, JWT_SECRETS: `new:${NEW},old:tooshort` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Should it start after all (the setting ignored), it must not outlive the test.
    onTestFinished(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(output.trim().split('\n')).toEqual([
      'Invalid configuration: JWT_SECRETS entry 2 of 2: the secret must be at least 32 bytes long (HS256 needs a 256-bit secret)',
    ]);
  });

  it('picks the secret by kid over HTTP and at connection_init alike, refusing an unknown kid with 401 and 4403', async () => {
    const server = await startTestServer({ JWT_SECRET: OLD, JWT_SECRETS: `new:${NEW},next:${NEXT}` });
    const viewer = { query: '{ viewer { subject } }' };
    for (const [token, subject] of [[await sign(OLD, undefined, { sub: 'legacy' }), 'legacy'], [await sign(NEXT, 'next', { sub: 'rotated' }), 'rotated']] as const) {
      expect((await postGraphQL(server.graphqlUrl, viewer, { authorization: `Bearer ${token}` })).body).toEqual({ data: { viewer: { subject } } });
      const client = await openAcknowledgedSocket(server.wsUrl, token);
      client.send({ id: 'v', type: 'subscribe', payload: viewer });
      expect(await client.nextMessage()).toEqual({ id: 'v', type: 'next', payload: { data: { viewer: { subject } } } });
    }

    const unknownKid = await sign(NEXT, 'retired');
    const refused = await postGraphQL(server.graphqlUrl, viewer, { authorization: `Bearer ${unknownKid}` });
    expect(refused.status).toBe(401);
    expect(refused.body.errors?.[0]).toMatchObject({ message: 'Invalid token: unknown key id (kid)', extensions: { code: 'UNAUTHENTICATED' } });
    const socket = await openSocket(server.wsUrl);
    socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${unknownKid}` } });
    expect(await socket.closed()).toEqual({ code: 4403, reason: 'Forbidden: Invalid token: unknown key id (kid)' });
  });
});
