/**
 * Webhook secrets and the signature headers every delivery carries (issue 11 §3).
 *
 * Two schemes, keyed with the same bytes (the base64-decoded part of the `whsec_` secret), so a
 * receiver can pick whichever its tooling knows:
 * - Standard Webhooks (https://www.standardwebhooks.com, the scheme Svix, Clerk, Resend and OpenAI
 *   receivers verify): `webhook-id`, `webhook-timestamp` and `webhook-signature:
 *   v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, space-separated, one per active secret;
 * - the seed's `x-tributary-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, one
 *   `v1=` per active secret, comma-separated (Stripe's layout).
 *
 * Several secrets sign at once while a rotation overlaps: receivers holding either one accept.
 * The verifying side is `@tributary/client/webhooks` (it ships on its own, so it repeats the parsing).
 * Secrets never appear in an error message.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { InternalError } from '../../errors.ts';

const SECRET_PREFIX = 'whsec_';

/** Standard Webhooks asks for 24 to 64 bytes of key; we generate 24. */
const SECRET_BYTES = 24;

/** Standard base64 with its padding, as Standard Webhooks libraries decode it. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A `webhook-id` is sent as a header value: visible ASCII, no spaces. */
const HEADER_TOKEN = /^[\x21-\x7e]{1,256}$/;

/** A new endpoint secret: `whsec_` + base64 of 24 random bytes. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/**
 * The HMAC key of a stored secret: the base64-decoded part after `whsec_`. A secret that does not
 * have that shape was not made by `newWebhookSecret` — a broken row, not the caller's input.
 */
export function webhookSecretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : null;
  if (encoded === null || encoded.length === 0 || !BASE64.test(encoded)) {
    throw new InternalError('WEBHOOK_SECRET', 'A stored webhook secret is not "whsec_" followed by base64');
  }
  return Buffer.from(encoded, 'base64');
}

export interface SignWebhookInput {
  /** The event id: the same on every attempt, replay and redelivery, so receivers de-duplicate on it. */
  readonly id: string;
  /** When this attempt is sent, in whole seconds since the Unix epoch. */
  readonly timestampSeconds: number;
  /** The exact request body; it is signed as UTF-8 and must be sent unchanged. */
  readonly body: string;
  /** Every secret currently signing for the endpoint (two during a rotation's overlap). */
  readonly secrets: readonly string[];
}

/**
 * The signature headers of one attempt, lower-case: `webhook-id`, `webhook-timestamp`,
 * `webhook-signature` and `x-tributary-signature`.
 */
export function signWebhook(input: SignWebhookInput): Record<string, string> {
  const { id, timestampSeconds, body } = input;
  if (!HEADER_TOKEN.test(id)) {
    throw new InternalError('WEBHOOK_SIGNATURE', 'A webhook id must be 1 to 256 visible ASCII characters');
  }
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new InternalError('WEBHOOK_SIGNATURE', `A webhook timestamp must be whole seconds, not ${timestampSeconds}`);
  }
  const secrets = input.secrets.length === 1 ? input.secrets : [...new Set(input.secrets)];
  if (secrets.length === 0) throw new InternalError('WEBHOOK_SIGNATURE', 'A webhook needs at least one secret to sign with');

  const timestamp = String(timestampSeconds);
  // Each content once, whatever the number of secrets (one but during a rotation's overlap).
  const standardContent = `${id}.${timestamp}.${body}`;
  const tributaryContent = `${timestamp}.${body}`;
  let standard = '';
  let tributary = `t=${timestamp}`;
  for (const secret of secrets) {
    const key = signingKey(secret);
    standard = `${standard === '' ? '' : `${standard} `}v1,${hmac(key, standardContent, 'base64')}`;
    tributary = `${tributary},v1=${hmac(key, tributaryContent, 'hex')}`;
  }
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': standard, 'x-tributary-signature': tributary };
}

/** Signing keys by secret, decoded once (an endpoint's secrets sign every one of its attempts); cleared past this. */
const KEYS_KEPT = 10_000;
const signingKeys = new Map<string, KeyObject>();

function signingKey(secret: string): KeyObject {
  let key = signingKeys.get(secret);
  if (key === undefined) {
    key = createSecretKey(webhookSecretKey(secret));
    if (signingKeys.size >= KEYS_KEPT) signingKeys.clear();
    signingKeys.set(secret, key);
  }
  return key;
}

/** Encoded by the digest itself: no Buffer in between (a quarter of signing's cost, measured). */
function hmac(key: KeyObject, content: string, encoding: 'base64' | 'hex'): string {
  return createHmac('sha256', key).update(content, 'utf8').digest(encoding);
}
