/**
 * Verifying Tributary's webhooks in a Node receiver.
 *
 *   const { id, payload } = verifyWebhook(rawBody, request.headers, process.env.TRIBUTARY_WEBHOOK_SECRET!);
 *   if (await alreadyHandled(id)) return; // `id` is the event id: the same on every retry and replay
 *
 * The raw-body pitfall: the signature covers the exact bytes Tributary sent. Pass the body as it
 * came off the wire (a string, a Buffer or other Uint8Array, or an ArrayBuffer), never
 * `JSON.stringify(req.body)` after a framework parsed it — re-serialising changes spacing, key order
 * and number formats, and the signature no longer matches; a parsed body itself (an object) is
 * refused with a TypeError. Express: `express.raw({ type: 'application/json' })`; Fastify: a
 * content-type parser with `parseAs: 'buffer'`; Next.js route handlers: `await request.text()`
 * (or `await request.arrayBuffer()`).
 *
 * Two schemes are accepted, keyed with the same secret:
 * - Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), checked first;
 *   any Standard Webhooks library verifies the same headers;
 * - `x-tributary-signature: t=…,v1=…` (Stripe's layout), used only when `webhook-signature` is
 *   absent. It does not sign the `webhook-id` header: the returned `id` is then the signed body's
 *   own `id` (Tributary's bodies carry the event id), and a `webhook-id` header that disagrees
 *   with it is refused — so a captured request cannot come back under another id.
 *
 * This module imports nothing from the server, so it can ship on its own.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type WebhookVerificationErrorCode =
  | 'MISSING_HEADERS'
  | 'BAD_TIMESTAMP'
  | 'TIMESTAMP_OUT_OF_TOLERANCE'
  | 'BAD_SIGNATURE'
  | 'BAD_PAYLOAD';

/** Why a webhook was refused; `code` is stable, the message is for people. Answer it with a 4xx. */
export class WebhookVerificationError extends Error {
  readonly code: WebhookVerificationErrorCode;

  constructor(code: WebhookVerificationErrorCode, message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
    this.code = code;
  }
}

/** Node's `req.headers`, a fetch `Headers`, or any object of header names to values. */
export type WebhookHeaders = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifyWebhookOptions {
  /**
   * How far the signed timestamp may be from now, either way, in seconds: a captured request
   * cannot be replayed later than this. `Infinity`: no limit (a stored webhook verified later);
   * NaN or a negative number is a TypeError. @default 300
   */
  readonly toleranceSeconds?: number;
  /** The clock, in ms since the Unix epoch. @default Date.now */
  readonly now?: () => number;
}

export interface VerifiedWebhook {
  /** The event id; the same on every attempt, replay and redelivery: de-duplicate on it. */
  readonly id: string;
  /** When this attempt was signed. */
  readonly timestamp: Date;
  /** The parsed JSON body. */
  readonly payload: unknown;
}

const SECRET_PREFIX = 'whsec_';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UNIX_SECONDS = /^\d{1,15}$/;

/**
 * Checks a webhook's signature and timestamp and returns its id, time and payload; throws a
 * `WebhookVerificationError` otherwise. `secret` is the endpoint's `whsec_…` secret, or several
 * (during a rotation, the old and the new one): a signature by any of them is accepted.
 * `rawBody` is the body exactly as received: a string, a Buffer (or any Uint8Array) or an
 * ArrayBuffer; anything else — a body already parsed as JSON, `undefined` — throws a TypeError.
 */
export function verifyWebhook(
  rawBody: string | Uint8Array | ArrayBuffer,
  headers: WebhookHeaders,
  secret: string | readonly string[],
  options: VerifyWebhookOptions = {},
): VerifiedWebhook {
  // An unset environment variable passed on (`process.env.X!`): said as such, not as a failed `.map`.
  if ((secret as unknown) === undefined || (secret as unknown) === null) throw new TypeError(`verifyWebhook needs the endpoint's whsec_ secret; it was given ${String(secret)}`);
  const keys = (typeof secret === 'string' ? [secret] : secret).map(secretKey);
  if (keys.length === 0) throw new TypeError('verifyWebhook needs at least one secret');
  const toleranceSeconds = options.toleranceSeconds ?? 300;
  // NaN would let every timestamp through unsaid, a negative one none (Infinity says so: no replay window).
  if (typeof toleranceSeconds !== 'number' || Number.isNaN(toleranceSeconds) || toleranceSeconds < 0) throw new TypeError(`verifyWebhook's toleranceSeconds must be a number of seconds ≥ 0; it was given ${String(toleranceSeconds)}`);
  const nowSeconds = Math.floor((options.now ?? Date.now)() / 1000);
  const body = rawBodyBytes(rawBody);
  const header = headerReader(headers);

  const id = header('webhook-id');
  const standardSignature = header('webhook-signature');
  let timestampSeconds: number;
  if (standardSignature !== undefined) {
    const timestamp = header('webhook-timestamp');
    if (id === undefined || timestamp === undefined) {
      throw new WebhookVerificationError('MISSING_HEADERS', 'webhook-signature needs webhook-id and webhook-timestamp');
    }
    timestampSeconds = checkedTimestamp(timestamp, nowSeconds, toleranceSeconds);
    const signed = (key: Buffer) => hmac(key, `${id}.${timestampSeconds}.`, body).toString('base64');
    const offered = standardSignature
      .split(/\s+/)
      // A header sent twice arrives joined with ", " (fetch's Headers): drop that comma.
      .map((entry) => entry.replace(/,$/, ''))
      .filter((entry) => entry.startsWith('v1,'))
      .map((entry) => entry.slice('v1,'.length));
    if (!anyMatches(keys.map(signed), offered)) {
      throw new WebhookVerificationError('BAD_SIGNATURE', 'No webhook-signature matches the secret');
    }
  } else {
    const tributarySignature = header('x-tributary-signature');
    if (tributarySignature === undefined) {
      throw new WebhookVerificationError('MISSING_HEADERS', 'Neither webhook-signature nor x-tributary-signature is present');
    }
    const fields = tributarySignature.split(',').map((field) => field.trim());
    const timestamps = fields.filter((field) => field.startsWith('t=')).map((field) => field.slice(2));
    if (timestamps.length !== 1 || timestamps[0] === undefined) {
      throw new WebhookVerificationError('BAD_TIMESTAMP', 'x-tributary-signature needs exactly one t=');
    }
    timestampSeconds = checkedTimestamp(timestamps[0], nowSeconds, toleranceSeconds);
    const signed = (key: Buffer) => hmac(key, `${timestampSeconds}.`, body).toString('hex');
    const offered = fields.filter((field) => field.startsWith('v1=')).map((field) => field.slice(3).toLowerCase());
    if (!anyMatches(keys.map(signed), offered)) {
      throw new WebhookVerificationError('BAD_SIGNATURE', 'No x-tributary-signature v1 matches the secret');
    }
  }

  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookVerificationError('BAD_PAYLOAD', 'The signed body is not JSON');
  }
  if (standardSignature !== undefined) return { id: id ?? '', timestamp: new Date(timestampSeconds * 1000), payload };
  // x-tributary-signature signs the body, not the id header: the id is the body's.
  const signedId = typeof payload === 'object' && payload !== null && typeof (payload as { id?: unknown }).id === 'string' ? (payload as { id: string }).id : undefined;
  if (id !== undefined && id !== signedId) {
    throw new WebhookVerificationError('BAD_SIGNATURE', 'webhook-id is not the id of the signed body (x-tributary-signature does not sign the header)');
  }
  return { id: signedId ?? '', timestamp: new Date(timestampSeconds * 1000), payload };
}

/** The body's bytes, without copying; anything but a string or bytes (e.g. `req.body` after `express.json()`) said as such. */
function rawBodyBytes(rawBody: unknown): Buffer {
  if (typeof rawBody === 'string') return Buffer.from(rawBody, 'utf8');
  if (ArrayBuffer.isView(rawBody)) return Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  // instanceof alone misses an ArrayBuffer from another realm (a vm context, a test environment).
  if (rawBody instanceof ArrayBuffer || Object.prototype.toString.call(rawBody) === '[object ArrayBuffer]') return Buffer.from(rawBody as ArrayBuffer);
  throw new TypeError(
    `verifyWebhook needs the raw request body exactly as received (a string, Buffer or ArrayBuffer); it was given ${described(rawBody)} — ` +
      `read it raw with express.raw({ type: 'application/json' }), a Fastify content-type parser with parseAs: 'buffer', or await request.text() in Next.js`,
  );
}

/** What a body that is not raw is, for the error: parsed JSON, a stream or Blob not read yet, nothing. */
function described(rawBody: unknown): string {
  if (rawBody === undefined || rawBody === null) return String(rawBody);
  if (typeof rawBody !== 'object') return `a ${typeof rawBody}`;
  if (Array.isArray(rawBody)) return 'an array (already parsed as JSON?)';
  // A plain object (of this realm or another): what a JSON body parser leaves.
  const name: unknown = Object.getPrototypeOf(rawBody) === null ? 'Object' : (rawBody as { constructor?: { name?: unknown } }).constructor?.name;
  if (name === 'Object' || typeof name !== 'string' || name === '') return 'an object (already parsed as JSON?)';
  return `a ${name} (not read yet?)`;
}

function secretKey(secret: string): Buffer {
  // Standard Webhooks libraries accept the bare base64 too; so do we.
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new TypeError('A webhook secret is "whsec_" followed by base64, as Tributary showed it at creation');
  }
  return Buffer.from(encoded, 'base64');
}

/** Case-insensitive lookup; a header sent twice counts as its values joined, as Node joins them. */
function headerReader(headers: WebhookHeaders): (name: string) => string | undefined {
  if (isFetchHeaders(headers)) return (name) => headers.get(name) ?? undefined;
  const lowered = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const joined = typeof value === 'string' ? value : value.join(name.toLowerCase() === 'webhook-signature' ? ' ' : ', ');
    lowered.set(name.toLowerCase(), joined);
  }
  return (name) => lowered.get(name);
}

function isFetchHeaders(headers: WebhookHeaders): headers is Headers {
  return typeof (headers as { get?: unknown }).get === 'function';
}

function checkedTimestamp(text: string, nowSeconds: number, toleranceSeconds: number): number {
  if (!UNIX_SECONDS.test(text.trim())) {
    throw new WebhookVerificationError('BAD_TIMESTAMP', 'The webhook timestamp is not whole seconds since the Unix epoch');
  }
  const seconds = Number(text.trim());
  if (Math.abs(nowSeconds - seconds) > toleranceSeconds) {
    throw new WebhookVerificationError('TIMESTAMP_OUT_OF_TOLERANCE', `The webhook timestamp is more than ${toleranceSeconds} s from now`);
  }
  return seconds;
}

function hmac(key: Buffer, prefix: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(prefix, 'utf8').update(body).digest();
}

/** Constant-time per comparison; every pair is compared, so the time says nothing about which. */
function anyMatches(expected: readonly string[], offered: readonly string[]): boolean {
  let matched = false;
  for (const want of expected) {
    const wanted = Buffer.from(want, 'utf8');
    for (const candidate of offered) {
      const given = Buffer.from(candidate, 'utf8');
      if (given.length === wanted.length && timingSafeEqual(given, wanted)) matched = true;
    }
  }
  return matched;
}
