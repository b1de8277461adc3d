/**
 * `npm run -s token -- --tenant acme --permission crm.contacts.read`: prints a JWT this server
 * accepts, signed with its own HS256 secret (JWT_SECRET, or one of JWT_SECRETS by `--kid`) and
 * with its JWT_ISSUER / JWT_AUDIENCE, for development, tests and scripts — the token alone on
 * standard output, so `TOKEN=$(npm run -s token -- …)` works. The token is checked with the
 * server's own verifier before it is printed: one the server would refuse is never handed out.
 * Tokens of JWT_JWKS_URL are the identity provider's to issue: it has the private keys.
 */
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { createTokenVerifier } from '../auth/token-verifier.ts';
import { ConfigError, loadConfig, type AuthConfig } from '../config.ts';
import { TributaryError } from '../errors.ts';

/** A refusal: its message is printed as it is, after `token: `. */
export class TokenCliError extends Error {
  /** 2: the options are wrong; 1: the settings do not allow minting a token. */
  readonly exitCode: 1 | 2;

  constructor(message: string, exitCode: 1 | 2) {
    super(message);
    this.name = 'TokenCliError';
    this.exitCode = exitCode;
  }
}

export const TOKEN_USAGE = `Usage: npm run -s token -- [options]
Prints a token signed with this server's JWT_SECRET (or JWT_SECRETS), valid for --ttl.

  --tenant <id>        the tenant (omit for an application-wide, back-end token)
  --permission <p>     a permission, e.g. crm.contacts.read (repeat for more)
  --admin              role admin (admin operations; with --tenant, limited to that tenant)
  --sub <subject>      the subject (default: cli)
  --app <app>          the application (default: default)
  --env <env>          the environment (default: default)
  --ttl <time>         how long it is valid: 90s, 30m, 1h, 7d or seconds (default: 1h)
  --kid <key id>       which key of JWT_SECRETS signs it (default: JWT_SECRET, or the only key)
  --help               this text

Run it with the server's settings (the same JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE in the environment).`;

/**
 * The actions a permission ends in (`src/auth/permissions.ts`): a permission without one grants
 * nothing, so it is refused here rather than handed out in a token that then gets FORBIDDEN.
 */
const ACTIONS = ['read', 'publish', 'write', 'join', 'broadcast'] as const;

const TTL = /^(\d{1,9})(s|m|h|d)?$/;
const TTL_UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * The token `args` (the command line after `--`) ask for, signed with the settings in `env`.
 * @throws TokenCliError with what is wrong and what to do.
 */
export async function mintToken(args: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<string> {
  const options = readOptions(args);
  const auth = readAuth(env);
  const { key, kid } = signingKey(auth, options.kid);
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    app: options.app,
    env: options.env,
    ...(options.tenant !== undefined && { tenant: options.tenant }),
    ...(options.admin && { roles: ['admin'] }),
    ...(options.permissions.length > 0 && { permissions: options.permissions }),
  };
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...(kid !== undefined && { kid }) })
    .setSubject(options.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + options.ttlSeconds);
  if (auth.issuer !== undefined) jwt.setIssuer(auth.issuer);
  if (auth.audience !== undefined) jwt.setAudience(auth.audience);
  const token = await jwt.sign(new TextEncoder().encode(key));
  // The server's own checks (claims' text, the tenant's length, exp's range): what they refuse is not printed.
  try {
    await createTokenVerifier({ auth }).verify(`Bearer ${token}`);
  } catch (error) {
    if (error instanceof TributaryError) throw new TokenCliError(`the server would refuse this token: ${error.message}`, 2);
    throw error;
  }
  return token;
}

interface TokenOptions {
  readonly tenant: string | undefined;
  readonly permissions: readonly string[];
  readonly admin: boolean;
  readonly sub: string;
  readonly app: string;
  readonly env: string;
  readonly ttlSeconds: number;
  readonly kid: string | undefined;
}

function readOptions(args: readonly string[]): TokenOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        tenant: { type: 'string' },
        permission: { type: 'string', multiple: true },
        admin: { type: 'boolean' },
        sub: { type: 'string' },
        app: { type: 'string' },
        env: { type: 'string' },
        ttl: { type: 'string' },
        kid: { type: 'string' },
      },
    }));
  } catch (error) {
    // parseArgs says which option and why ("Unknown option '--tenat'", "Option '--tenant <value>' argument missing").
    throw new TokenCliError(`${error instanceof Error ? error.message : String(error)} (npm run token -- --help)`, 2);
  }
  for (const name of ['tenant', 'sub', 'app', 'env', 'kid'] as const) {
    if (values[name]?.trim() === '') throw new TokenCliError(`--${name} must not be empty`, 2);
  }
  const permissions = values.permission ?? [];
  for (const permission of permissions) {
    const action = ACTIONS.find((candidate) => permission.endsWith(`.${candidate}`) && permission.length > candidate.length + 1);
    if (action === undefined) {
      throw new TokenCliError(`--permission ${JSON.stringify(permission)} grants nothing: a permission is <name>.<action>, the action one of ${ACTIONS.join(', ')} (e.g. crm.contacts.read)`, 2);
    }
  }
  return {
    tenant: values.tenant,
    permissions,
    admin: values.admin === true,
    sub: values.sub ?? 'cli',
    app: values.app ?? 'default',
    env: values.env ?? 'default',
    ttlSeconds: ttlSeconds(values.ttl ?? '1h'),
    kid: values.kid,
  };
}

function ttlSeconds(text: string): number {
  const match = TTL.exec(text.trim());
  const seconds = match?.[1] === undefined ? 0 : Number(match[1]) * (TTL_UNIT_SECONDS[match[2] ?? 's'] ?? 1);
  if (seconds <= 0) throw new TokenCliError(`--ttl ${JSON.stringify(text)} is not a time: a positive number of seconds, or with s, m, h or d (90s, 30m, 1h, 7d)`, 2);
  return seconds;
}

function readAuth(env: Readonly<Record<string, string | undefined>>): Extract<AuthConfig, { mode: 'jwt' }> {
  let auth: AuthConfig;
  try {
    ({ auth } = loadConfig(env));
  } catch (error) {
    if (error instanceof ConfigError) throw new TokenCliError(error.message, 1);
    throw error;
  }
  if (auth.mode === 'development') {
    throw new TokenCliError(
      'neither JWT_SECRET, JWT_SECRETS nor JWT_JWKS_URL is set: a server with these settings runs in development mode and takes no token (every request acts as app, env and tenant "default", role admin). ' +
        // One secret made once: a fresh `openssl rand` in each shell makes two, and the server refuses every token.
        'To use tokens, give the server and this command the same JWT_SECRET, at least 32 bytes: make it once, in the server\'s shell before npm start — export JWT_SECRET="$(openssl rand -base64 32)" — ' +
          'and export that same value in this shell (echo "$JWT_SECRET" in the server\'s shows it): another openssl rand here makes another secret, whose tokens the server refuses',
      1,
    );
  }
  if (auth.secret === undefined && auth.secrets === undefined) {
    throw new TokenCliError(
      'only JWT_JWKS_URL is set: its tokens are signed with your identity provider\'s private keys, so get them from the provider. ' +
        'To mint tokens here as well, give the server and this command a JWT_SECRET (HS256, at least 32 bytes) besides JWT_JWKS_URL',
      1,
    );
  }
  return auth;
}

/** The secret that signs, and the `kid` to name it by (none for JWT_SECRET, as the server expects: `src/auth/hmac-keys.ts`). */
function signingKey(auth: Extract<AuthConfig, { mode: 'jwt' }>, kid: string | undefined): { readonly key: string; readonly kid?: string } {
  if (kid !== undefined) {
    const entry = auth.secrets?.find((candidate) => candidate.kid === kid);
    if (entry === undefined) {
      throw new TokenCliError(auth.secrets === undefined ? '--kid needs JWT_SECRETS (key id:secret pairs); with JWT_SECRET alone, leave --kid out' : `--kid ${JSON.stringify(kid)} is not a key id of JWT_SECRETS`, 2);
    }
    return { key: entry.secret, kid };
  }
  if (auth.secret !== undefined) return { key: auth.secret };
  const [only, ...others] = auth.secrets ?? [];
  if (only !== undefined && others.length === 0) return { key: only.secret, kid: only.kid };
  // Which key is current is the rotation's business: the command does not guess.
  throw new TokenCliError('JWT_SECRETS holds several keys and no JWT_SECRET: say which one signs with --kid <key id>', 2);
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(TOKEN_USAGE);
  } else {
    mintToken(args, process.env).then(
      (token) => console.log(token),
      (error: unknown) => {
        console.error(`token: ${error instanceof Error ? error.message : String(error)}`);
        process.exitCode = error instanceof TokenCliError ? error.exitCode : 1;
      },
    );
  }
}
