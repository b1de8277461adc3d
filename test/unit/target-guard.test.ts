import { describe, expect, it } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import {
  assertResolvableTarget,
  assertWebhookUrl,
  forbiddenAddressReason,
  isForbiddenAddress,
} from '../../src/pipeline/webhooks/target-guard.ts';
import { createWebhookDns } from '../../src/pipeline/webhooks/webhook-dns.ts';

const strict = { allowPrivateTargets: false };
const permissive = { allowPrivateTargets: true };

function refusal(run: () => unknown): TributaryError {
  try {
    run();
  } catch (error) {
    if (error instanceof TributaryError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

async function asyncRefusal(run: () => Promise<unknown>): Promise<TributaryError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof TributaryError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('isForbiddenAddress', () => {
  it.each([
    ['127.0.0.1', 'a loopback address'],
    ['127.255.0.9', 'a loopback address'],
    ['10.0.0.1', 'a private address'],
    ['172.16.0.1', 'a private address'],
    ['172.31.255.254', 'a private address'],
    ['192.168.1.1', 'a private address'],
    ['169.254.169.254', 'the cloud metadata address'],
    ['168.63.129.16', 'the cloud metadata address'],
    ['::ffff:168.63.129.16', 'the cloud metadata address'],
    ['169.254.0.1', 'a link-local address'],
    ['100.64.0.1', 'a carrier-grade NAT address'],
    ['0.0.0.0', 'the unspecified address'],
    ['0.1.2.3', 'the unspecified address'],
    ['255.255.255.255', 'the broadcast address'],
    ['224.0.0.251', 'a multicast address'],
    ['240.0.0.1', 'a reserved address'],
    ['192.0.2.10', 'a reserved address'],
    ['::1', 'a loopback address'],
    ['::', 'the unspecified address'],
    ['fe80::1', 'a link-local address'],
    ['fe80::1%eth0', 'a link-local address'],
    ['fc00::1', 'a unique-local address'],
    ['fd00:ec2::254', 'a unique-local address'],
    ['ff02::1', 'a multicast address'],
    ['2001:db8::1', 'a reserved address'],
    ['::ffff:127.0.0.1', 'a loopback address'],
    ['::ffff:a9fe:a9fe', 'the cloud metadata address'],
    ['::ffff:10.1.2.3', 'a private address'],
    ['64:ff9b::7f00:1', 'a loopback address'],
    ['2002:c0a8:101::1', 'a private address'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'a Teredo tunnel address'],
    ['100::1', 'a special-purpose address'],
    ['not-an-ip', 'not an IP address'],
  ])('refuses %s: %s', (ip, reason) => {
    expect(isForbiddenAddress(ip)).toBe(true);
    expect(forbiddenAddressReason(ip)).toBe(reason);
  });

  it.each(['8.8.8.8', '93.184.216.34', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'])(
    'allows the public address %s',
    (ip) => {
      expect(isForbiddenAddress(ip)).toBe(false);
      expect(forbiddenAddressReason(ip)).toBeNull();
    },
  );
});

describe('assertWebhookUrl', () => {
  it('returns the parsed URL of a public http or https target', () => {
    expect(assertWebhookUrl('https://hooks.example.com/tributary?key=1', strict).href).toBe('https://hooks.example.com/tributary?key=1');
    expect(assertWebhookUrl('http://93.184.216.34:8080/hook', strict).port).toBe('8080');
    expect(assertWebhookUrl('https://[2606:4700:4700::1111]/hook', strict).hostname).toBe('[2606:4700:4700::1111]');
  });

  it.each([
    ['not a url', /not a valid absolute URL/],
    ['/relative/path', /not a valid absolute URL/],
    ['ftp://files.example.com/hook', /must use http or https, not ftp/],
    ['javascript:alert(1)', /must use http or https, not javascript/],
    ['file:///etc/passwd', /must use http or https, not file/],
    ['https://user:secret@hooks.example.com/', /must not contain a user name or password/],
    ['https://user@hooks.example.com/', /must not contain a user name or password/],
    [`https://hooks.example.com/${'a'.repeat(2048)}`, /longer than 2048 characters/],
    // Names DNS cannot carry: a lookup would fail with EINVAL, not "not found".
    [`https://${'abcdefghij.'.repeat(25)}com/hook`, /host is not a valid DNS name/],
    [`https://${'a'.repeat(64)}.example.com/hook`, /host is not a valid DNS name/],
    ['https://hooks..example.com/hook', /host is not a valid DNS name/],
  ])('refuses the malformed URL %s, even with private targets allowed', (url, message) => {
    for (const options of [strict, permissive]) {
      const error = refusal(() => assertWebhookUrl(url, options));
      expect(error.code).toBe(ErrorCode.BAD_USER_INPUT);
      expect(error.message).toMatch(message);
      expect(error.details).toEqual({ field: 'url' });
    }
  });

  it('accepts a host name of 253 characters in labels of up to 63', () => {
    const host = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.');
    expect(assertWebhookUrl(`https://${host}/hook`, strict).hostname).toBe(host);
    expect(assertWebhookUrl(`https://${host}./hook`, strict).hostname).toBe(`${host}.`);
  });

  it('accepts a URL of exactly 2048 characters', () => {
    const prefix = 'https://hooks.example.com/';
    const url = prefix + 'a'.repeat(2048 - prefix.length);
    expect(assertWebhookUrl(url, strict).href).toBe(url);
  });

  it.each([
    ['http://127.0.0.1:3000/hook', '127.0.0.1, a loopback address'],
    ['http://[::1]/hook', '::1, a loopback address'],
    ['http://169.254.169.254/latest/meta-data/', '169.254.169.254, the cloud metadata address'],
    ['http://10.0.0.5/hook', '10.0.0.5, a private address'],
    // WHATWG URL parsing turns the old numeric spellings into dotted quads first.
    ['http://0x7f.1/hook', '127.0.0.1, a loopback address'],
    ['http://2130706433/hook', '127.0.0.1, a loopback address'],
    ['http://[::ffff:127.0.0.1]/hook', '::ffff:7f00:1, a loopback address'],
    ['http://0.0.0.0:8080/', '0.0.0.0, the unspecified address'],
    ['http://localhost:8080/hook', 'localhost, a loopback address'],
    ['http://LOCALHOST./hook', 'localhost, a loopback address'],
    ['http://api.localhost/hook', 'api.localhost, a loopback address'],
  ])('refuses %s: %s', (url, said) => {
    const error = refusal(() => assertWebhookUrl(url, strict));
    expect(error.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(error.message).toBe(`The webhook URL points to ${said}; webhooks go to public addresses only (for tests and development, WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows private ones: set it on this server and on every process that delivers, role all or workers)`);
    expect(error.details).toEqual({ field: 'url' });
  });

  it('allows loopback and private literals when private targets are allowed', () => {
    expect(assertWebhookUrl('http://127.0.0.1:3000/hook', permissive).host).toBe('127.0.0.1:3000');
    expect(assertWebhookUrl('http://localhost:3000/hook', permissive).hostname).toBe('localhost');
    expect(assertWebhookUrl('http://[::1]:3000/hook', permissive).hostname).toBe('[::1]');
  });
});

describe('assertResolvableTarget', () => {
  // The attempts' resolver: literals and localhost are answered without a query (names are asked of
  // DNS in test/integration/webhook-delivery-dns.test.ts).
  const dns = createWebhookDns();
  const resolve = (host: string) => dns.resolve(host);

  it('refuses a host name whose DNS answer is a loopback address, saying what it resolved to', async () => {
    const error = await asyncRefusal(() => assertResolvableTarget(new URL('http://localhost:9/hook'), strict, resolve));
    expect(error.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(error.message).toMatch(/^The webhook URL points to (127\.0\.0\.1|::1) \(localhost resolves to it\), a loopback address;/);
    expect(error.details).toEqual({ field: 'url' });
  });

  it('refuses a non-public literal without a lookup and lets a public literal through', async () => {
    const error = await asyncRefusal(() => assertResolvableTarget(new URL('http://[fd00::5]/hook'), strict, resolve));
    expect(error.message).toBe('The webhook URL points to fd00::5, a unique-local address; webhooks go to public addresses only (for tests and development, WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows private ones: set it on this server and on every process that delivers, role all or workers)');
    await expect(assertResolvableTarget(new URL('https://93.184.216.34/hook'), strict, resolve)).resolves.toBeUndefined();
  });

  it('lets everything through when private targets are allowed', async () => {
    await expect(assertResolvableTarget(new URL('http://localhost:9/hook'), permissive, resolve)).resolves.toBeUndefined();
    await expect(assertResolvableTarget(new URL('http://10.0.0.1/hook'), permissive, resolve)).resolves.toBeUndefined();
  });
});
