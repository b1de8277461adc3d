/**
 * The HS256 secrets of the configuration: `JWT_SECRET` (one secret, tokens' `kid` not looked at)
 * and `JWT_SECRETS` (several, each under the key id a token names in its `kid` header), so a
 * secret can be rotated without restarting every instance at once (`src/auth/hmac-keys.ts` says
 * which secret checks which token). Validated with the rest in `config.ts`.
 *
 * Messages name entries by their position, never by their text: a secret with a comma in it
 * splits into pieces that would otherwise be printed as "key ids".
 */
import { z } from 'zod';
import { optionalString } from './config-fields.ts';

/** One HS256 secret of `JWT_SECRETS` and the key id tokens name it by. */
export interface JwtSecret {
  /** The `kid` header of the tokens it signs. */
  readonly kid: string;
  /** At least 32 bytes (a 256-bit key for HS256, RFC 7518 §3.2). */
  readonly secret: string;
}

const MIN_SECRET_BYTES = 32;

/**
 * What a key id may be: letters, digits and `. _ ~ + / = -` (dates, UUIDs, base64 thumbprints),
 * 128 at most; never `,` or `:`, which separate the entries and a key id from its secret.
 */
const KEY_ID = /^[A-Za-z0-9._~+/=-]{1,128}$/;

/** `JWT_SECRET`: the secret of HS256 tokens without a `kid` (of every HS256 token when `JWT_SECRETS` is unset). */
export const jwtSecretField = optionalString.refine((value) => value === undefined || Buffer.byteLength(value) >= MIN_SECRET_BYTES, {
  message: `must be at least ${MIN_SECRET_BYTES} bytes long (HS256 needs a 256-bit secret)`,
});

/** `JWT_SECRETS=kid1:secret1,kid2:secret2`: a secret may hold `:` (the first one ends the key id), not `,`. */
export const jwtSecretsField = optionalString.transform((value, ctx): readonly JwtSecret[] | undefined => {
  if (value === undefined) return undefined;
  const refuse = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) return refuse('must list at least one kid:secret');
  const secrets: JwtSecret[] = [];
  for (const [index, entry] of entries.entries()) {
    const at = `entry ${index + 1} of ${entries.length}`;
    const colon = entry.indexOf(':');
    if (colon === -1) return refuse(`must be kid:secret pairs separated by commas: ${at} is not kid:secret (a secret cannot contain a comma)`);
    const kid = entry.slice(0, colon).trim();
    const secret = entry.slice(colon + 1).trim();
    if (!KEY_ID.test(kid)) return refuse(`${at}: the key id must be 1–128 letters, digits or . _ ~ + / = -`);
    if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) return refuse(`${at}: the secret must be at least ${MIN_SECRET_BYTES} bytes long (HS256 needs a 256-bit secret)`);
    const same = secrets.findIndex((other) => other.kid === kid);
    if (same !== -1) return refuse(`entries ${same + 1} and ${index + 1} have the same key id (each kid must name one secret)`);
    const copy = secrets.findIndex((other) => other.secret === secret);
    // Two names for one key: a token "signed with the new key" would still be signed with the old one.
    if (copy !== -1) return refuse(`entries ${copy + 1} and ${index + 1} have the same secret (a rotation needs a new secret under the new key id)`);
    secrets.push({ kid, secret });
  }
  return secrets;
});
