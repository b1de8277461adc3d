import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError } from '@tributary/client/webhooks';
import type { WebhookVerificationErrorCode } from '@tributary/client/webhooks';
import { InternalError } from '../../src/errors.ts';
import { newWebhookSecret, signWebhook, webhookSecretKey } from '../../src/pipeline/webhooks/webhook-signature.ts';

// `standardwebhooks` is the reference implementation of the Standard Webhooks spec, written
// independently of ours; it checks the timestamp against the real clock, so these tests sign "now".
const nowSeconds = () => Math.floor(Date.now() / 1000);
const body = JSON.stringify({ id: 'evt_1', type: 'order.created', payload: { total: 12.5, note: 'crème brûlée 🍮' } });
const id = 'evt_AbC-12_xyz';

function signed(secrets: readonly string[], timestampSeconds = nowSeconds(), payload = body) {
  return signWebhook({ id, timestampSeconds, body: payload, secrets });
}

function verificationCode(run: () => unknown): WebhookVerificationErrorCode | 'accepted' {
  try {
    run();
    return 'accepted';
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error.code;
    throw error;
  }
}

function referenceAccepts(secret: string, payload: string, headers: Record<string, string>): boolean {
  try {
    new Webhook(secret).verify(payload, headers);
    return true;
  } catch {
    return false;
  }
}

describe('webhook secrets', () => {
  it('are whsec_ and the base64 of 24 random bytes, different every time', () => {
    const first = newWebhookSecret();
    const second = newWebhookSecret();
    expect(first).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(webhookSecretKey(first)).toHaveLength(24);
    expect(first).not.toBe(second);
  });

  it('a stored secret without the whsec_ prefix or with broken base64 is an internal fault that does not show the secret', () => {
    for (const [broken, hidden] of [
      ['c2VjcmV0c2VjcmV0', 'c2VjcmV0c2VjcmV0'],
      ['whsec_', null],
      ['whsec_!!not-base64!!', 'not-base64'],
      ['whsec_abc', 'abc'],
    ] as const) {
      let thrown: unknown;
      try {
        webhookSecretKey(broken);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(InternalError);
      expect(thrown).toMatchObject({ fault: 'WEBHOOK_SECRET' });
      if (hidden !== null) expect((thrown as Error).message).not.toContain(hidden);
    }
  });
});

describe('signWebhook', () => {
  it('is verified by the independent standardwebhooks library, which returns the payload', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it('sends the event id, the timestamp and one v1 signature per secret', () => {
    const [old, current] = [newWebhookSecret(), newWebhookSecret()];
    const headers = signed([old, current], 1_700_000_000);
    expect(headers['webhook-id']).toBe(id);
    expect(headers['webhook-timestamp']).toBe('1700000000');
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}=$/);
    expect(Object.keys(headers).sort()).toEqual(['webhook-id', 'webhook-signature', 'webhook-timestamp', 'x-tributary-signature']);
  });

  it('x-tributary-signature is t=<seconds>,v1=<hex HMAC-SHA256 of "t.body"> per secret, keyed with the decoded whsec_ bytes', () => {
    const secrets = [newWebhookSecret(), newWebhookSecret()];
    const headers = signed(secrets, 1_700_000_123);
    const expected = secrets.map(
      (secret) => `v1=${createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update(`1700000123.${body}`, 'utf8').digest('hex')}`,
    );
    expect(headers['x-tributary-signature']).toBe(['t=1700000123', ...expected].join(','));
  });

  it('rotation overlap: a message signed with the old and the new secret is accepted by a receiver holding either', () => {
    const [old, current] = [newWebhookSecret(), newWebhookSecret()];
    const headers = signed([old, current]);
    expect(referenceAccepts(old, body, headers)).toBe(true);
    expect(referenceAccepts(current, body, headers)).toBe(true);
    expect(verifyWebhook(body, headers, old).id).toBe(id);
    expect(verifyWebhook(body, headers, current).id).toBe(id);
  });

  it('after the overlap only the new secret signs: the old one is refused', () => {
    const [old, current] = [newWebhookSecret(), newWebhookSecret()];
    const headers = signed([current]);
    expect(referenceAccepts(old, body, headers)).toBe(false);
    expect(verificationCode(() => verifyWebhook(body, headers, old))).toBe('BAD_SIGNATURE');
    expect(verificationCode(() => verifyWebhook(body, headers, [old, current]))).toBe('accepted');
  });

  it('refuses an id that cannot be a header value and a timestamp that is not whole seconds', () => {
    const secrets = [newWebhookSecret()];
    expect(() => signWebhook({ id: 'evt 1', timestampSeconds: 1, body, secrets })).toThrow(InternalError);
    expect(() => signWebhook({ id: 'evt\n1', timestampSeconds: 1, body, secrets })).toThrow(InternalError);
    expect(() => signWebhook({ id, timestampSeconds: 1.5, body, secrets })).toThrow(InternalError);
    expect(() => signWebhook({ id, timestampSeconds: 1, body, secrets: [] })).toThrow(InternalError);
  });
});

describe('verifyWebhook', () => {
  it('accepts what the independent standardwebhooks library signs, and returns id, time and payload', () => {
    const secret = newWebhookSecret();
    const timestamp = new Date(nowSeconds() * 1000);
    const headers = {
      'webhook-id': 'msg_from_reference',
      'webhook-timestamp': String(timestamp.getTime() / 1000),
      'webhook-signature': new Webhook(secret).sign('msg_from_reference', timestamp, body),
    };
    expect(verifyWebhook(body, headers, secret)).toEqual({ id: 'msg_from_reference', timestamp, payload: JSON.parse(body) as unknown });
  });

  it('refuses a tampered body, id or timestamp, as the reference library does', () => {
    const secret = newWebhookSecret();
    const ts = nowSeconds();
    const headers = signed([secret], ts);
    const tampered: readonly [string, Record<string, string>][] = [
      [body.replace('12.5', '125'), headers],
      [body, { ...headers, 'webhook-id': 'evt_other' }],
      [body, { ...headers, 'webhook-timestamp': String(ts - 1) }],
    ];
    for (const [payload, sent] of tampered) {
      expect(verificationCode(() => verifyWebhook(payload, sent, secret))).toBe('BAD_SIGNATURE');
      expect(referenceAccepts(secret, payload, sent)).toBe(false);
    }
  });

  it('refuses a signature made with another secret', () => {
    const headers = signed([newWebhookSecret()]);
    expect(verificationCode(() => verifyWebhook(body, headers, newWebhookSecret()))).toBe('BAD_SIGNATURE');
  });

  it('refuses a timestamp more than the tolerance away, in the past or the future, and accepts one at the edge', () => {
    const secret = newWebhookSecret();
    const ts = 1_700_000_000;
    const at = (seconds: number) => ({ now: () => seconds * 1000 });
    const headers = signed([secret], ts);
    expect(verificationCode(() => verifyWebhook(body, headers, secret, at(ts + 301)))).toBe('TIMESTAMP_OUT_OF_TOLERANCE');
    expect(verificationCode(() => verifyWebhook(body, headers, secret, at(ts - 301)))).toBe('TIMESTAMP_OUT_OF_TOLERANCE');
    expect(verificationCode(() => verifyWebhook(body, headers, secret, at(ts + 300)))).toBe('accepted');
    expect(verificationCode(() => verifyWebhook(body, headers, secret, at(ts - 300)))).toBe('accepted');
    expect(verificationCode(() => verifyWebhook(body, headers, secret, { ...at(ts + 61), toleranceSeconds: 60 }))).toBe(
      'TIMESTAMP_OUT_OF_TOLERANCE',
    );
    // The reference library, on the real clock, refuses the same old message.
    expect(referenceAccepts(secret, body, headers)).toBe(false);
  });

  it('refuses a tolerance that is not a number of seconds ≥ 0 (an unset variable read as a number is NaN, which would let any timestamp through unsaid)', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret], 1_700_000_000);
    for (const toleranceSeconds of [Number.NaN, -1]) {
      expect(() => verifyWebhook(body, headers, secret, { toleranceSeconds })).toThrow(/toleranceSeconds must be a number of seconds ≥ 0/);
    }
    // Infinity is said on purpose: no replay window (a stored webhook verified later).
    expect(verifyWebhook(body, headers, secret, { toleranceSeconds: Number.POSITIVE_INFINITY }).id).toBe(id);
  });

  it('says which header is missing or malformed', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    const { ['webhook-id']: _id, ...withoutId } = headers;
    expect(verificationCode(() => verifyWebhook(body, {}, secret))).toBe('MISSING_HEADERS');
    expect(verificationCode(() => verifyWebhook(body, withoutId, secret))).toBe('MISSING_HEADERS');
    expect(verificationCode(() => verifyWebhook(body, { ...headers, 'webhook-timestamp': 'yesterday' }, secret))).toBe('BAD_TIMESTAMP');
    expect(verificationCode(() => verifyWebhook(body, { ...headers, 'webhook-timestamp': '17e8' }, secret))).toBe('BAD_TIMESTAMP');
  });

  it('refuses a correctly signed body that is not JSON with BAD_PAYLOAD', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret], nowSeconds(), 'not json');
    expect(verificationCode(() => verifyWebhook('not json', headers, secret))).toBe('BAD_PAYLOAD');
  });

  it('reads headers case-insensitively from a plain object, Node-style arrays or a fetch Headers, and raw bodies as bytes', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    const capitalised = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toUpperCase(), value]));
    const bytes = new TextEncoder().encode(body);
    // A Uint8Array that is a window into a larger buffer, as a parser may hand it over.
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 4);
    const window = padded.subarray(4, 4 + bytes.length);

    expect(verifyWebhook(body, capitalised, secret).id).toBe(id);
    expect(verifyWebhook(Buffer.from(body), new Headers(headers), secret).id).toBe(id);
    expect(verifyWebhook(window, { ...headers, 'webhook-signature': [headers['webhook-signature'] ?? ''] }, secret).id).toBe(id);
  });

  it('reads an ArrayBuffer of the exact signed body, as fetch and Next.js request.arrayBuffer() give it', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    const arrayBuffer = new TextEncoder().encode(body).buffer;
    expect(arrayBuffer).toBeInstanceOf(ArrayBuffer);
    expect(verifyWebhook(arrayBuffer, headers, secret)).toMatchObject({ id, payload: JSON.parse(body) as unknown });
    expect(verificationCode(() => verifyWebhook(new TextEncoder().encode(`${body} `).buffer, headers, secret))).toBe('BAD_SIGNATURE');
  });

  it('a body already parsed as JSON is refused with a TypeError that says to pass the raw body and how', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    // What express.json() leaves in req.body: typed any, so TypeScript lets it through.
    const parsed: unknown = JSON.parse(body);
    const verifyParsed = () => verifyWebhook(parsed as string, headers, secret);
    expect(verifyParsed).toThrow(TypeError);
    expect(verifyParsed).toThrow(/needs the raw request body exactly as received \(a string, Buffer or ArrayBuffer\); it was given an object \(already parsed as JSON\?\)/);
    expect(verifyParsed).toThrow(/express\.raw\(\{ type: 'application\/json' \}\)/);
    expect(verifyParsed).toThrow(/await request\.text\(\)/);
    expect(() => verifyWebhook([1, 2] as unknown as string, headers, secret)).toThrow(/it was given an array \(already parsed as JSON\?\)/);
  });

  it('an undefined, null or numeric body is refused with a TypeError that names it', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    // No body parser, or one that did not match the content type: req.body is undefined.
    const verifyUndefined = () => verifyWebhook(undefined as unknown as string, headers, secret);
    expect(verifyUndefined).toThrow(TypeError);
    expect(verifyUndefined).toThrow(/needs the raw request body .*; it was given undefined — read it raw with/);
    expect(() => verifyWebhook(null as unknown as string, headers, secret)).toThrow(/; it was given null — /);
    expect(() => verifyWebhook(42 as unknown as string, headers, secret)).toThrow(/; it was given a number — /);
  });

  it('a stream or Blob not read yet (fetch’s request.body) is named as such, not as parsed JSON', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    expect(() => verifyWebhook(new ReadableStream() as unknown as string, headers, secret)).toThrow(/; it was given a ReadableStream \(not read yet\?\) — /);
    expect(() => verifyWebhook(new Blob(['{}']) as unknown as string, headers, secret)).toThrow(/; it was given a Blob \(not read yet\?\) — /);
    expect(() => verifyWebhook(Object.create(null) as string, headers, secret)).toThrow(/; it was given an object \(already parsed as JSON\?\) — /);
  });

  it('a header repeated by a proxy still verifies: the signatures are joined', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    const fetchHeaders = new Headers(headers);
    fetchHeaders.append('webhook-signature', 'v1,bm90IGEgc2lnbmF0dXJl');
    expect(verifyWebhook(body, fetchHeaders, secret).id).toBe(id);
  });

  it('the raw-body pitfall: the same JSON re-serialised by a framework no longer verifies', () => {
    const secret = newWebhookSecret();
    const pretty = JSON.stringify(JSON.parse(body) as unknown, null, 2);
    const headers = signed([secret], nowSeconds(), pretty);
    const reserialised = JSON.stringify(JSON.parse(pretty) as unknown);
    expect(verificationCode(() => verifyWebhook(pretty, headers, secret))).toBe('accepted');
    expect(verificationCode(() => verifyWebhook(reserialised, headers, secret))).toBe('BAD_SIGNATURE');
  });

  it('accepts the bare base64 secret as Standard Webhooks libraries do, and names a malformed one without showing it', () => {
    const secret = newWebhookSecret();
    const headers = signed([secret]);
    expect(verifyWebhook(body, headers, secret.slice('whsec_'.length)).id).toBe(id);
    expect(() => verifyWebhook(body, headers, 'whsec_%%%')).toThrow(TypeError);
    expect(() => verifyWebhook(body, headers, [])).toThrow(TypeError);
    // An unset environment variable passed on: said so.
    expect(() => verifyWebhook(body, headers, process.env['TRIBUTARY_NO_SUCH_SECRET']!)).toThrow(/needs the endpoint's whsec_ secret; it was given undefined/);
  });

  describe('x-tributary-signature, when the Standard Webhooks headers are absent', () => {
    function tributaryOnly(secrets: readonly string[], timestampSeconds: number, payload = body) {
      const { ['x-tributary-signature']: signature } = signed(secrets, timestampSeconds, payload);
      return { 'X-Tributary-Signature': signature ?? '' };
    }

    it('accepts a valid signature from either secret of an overlap and returns the time and payload', () => {
      const [old, current] = [newWebhookSecret(), newWebhookSecret()];
      const ts = nowSeconds();
      const result = verifyWebhook(body, tributaryOnly([old, current], ts), old);
      // The id is the signed body's: this scheme does not sign the webhook-id header.
      expect(result).toEqual({ id: 'evt_1', timestamp: new Date(ts * 1000), payload: JSON.parse(body) as unknown });
      expect(verifyWebhook(body, tributaryOnly([old, current], ts), current).payload).toEqual(JSON.parse(body));
    });

    it('refuses a tampered body or timestamp, another secret, and an old timestamp', () => {
      const secret = newWebhookSecret();
      const ts = nowSeconds();
      const headers = tributaryOnly([secret], ts);
      const shifted = { 'x-tributary-signature': (headers['X-Tributary-Signature'] ?? '').replace(`t=${ts}`, `t=${ts - 1}`) };
      expect(verificationCode(() => verifyWebhook(body.replace('order', 'odder'), headers, secret))).toBe('BAD_SIGNATURE');
      expect(verificationCode(() => verifyWebhook(body, shifted, secret))).toBe('BAD_SIGNATURE');
      expect(verificationCode(() => verifyWebhook(body, headers, newWebhookSecret()))).toBe('BAD_SIGNATURE');
      expect(verificationCode(() => verifyWebhook(body, tributaryOnly([secret], ts - 301), secret))).toBe('TIMESTAMP_OUT_OF_TOLERANCE');
      expect(verificationCode(() => verifyWebhook(body, { 'x-tributary-signature': 'v1=00' }, secret))).toBe('BAD_TIMESTAMP');
    });

    it('refuses a webhook-id header that is not the signed body’s id: a captured request cannot come back under another id', () => {
      const secret = newWebhookSecret();
      const ts = nowSeconds();
      const { ['webhook-signature']: _stripped, ...captured } = signed([secret], ts);
      expect(verificationCode(() => verifyWebhook(body, { ...captured, 'webhook-id': 'evt_forged' }, secret))).toBe('BAD_SIGNATURE');
      expect(verifyWebhook(body, { ...captured, 'webhook-id': 'evt_1' }, secret).id).toBe('evt_1');
      // A signed body without an id of its own: no id to trust, so none is taken from the header either.
      const anonymous = JSON.stringify({ type: 'order.created' });
      expect(verificationCode(() => verifyWebhook(anonymous, { ...tributaryOnly([secret], ts, anonymous), 'webhook-id': 'evt_forged' }, secret))).toBe('BAD_SIGNATURE');
      expect(verifyWebhook(anonymous, tributaryOnly([secret], ts, anonymous), secret).id).toBe('');
    });

    it('is not consulted when webhook-signature is present and wrong', () => {
      const secret = newWebhookSecret();
      const headers = { ...signed([secret]), 'webhook-signature': 'v1,bm90IGEgc2lnbmF0dXJl' };
      expect(verificationCode(() => verifyWebhook(body, headers, secret))).toBe('BAD_SIGNATURE');
    });
  });
});
