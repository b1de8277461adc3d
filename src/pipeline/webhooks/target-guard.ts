/**
 * Which URLs a webhook may be sent to (issue 11 §9): no request the server makes on a tenant's
 * behalf may reach its own network — loopback, private ranges, link-local (where cloud metadata
 * services answer, 169.254.169.254), and the like.
 *
 * Checked three times: the URL's shape and a literal IP at creation (`assertWebhookUrl`), the
 * host's DNS answers at creation (`assertResolvableTarget`, for a clear error, from the attempts'
 * resolver), and the address actually connected to at every attempt (`webhook-http.ts`), because
 * DNS can change between the check and the connection (rebinding). `WEBHOOK_ALLOW_PRIVATE_TARGETS=true` lifts the address
 * rules for tests and development; the URL's shape is checked regardless.
 *
 * Ranges come from ipaddr.js, which tracks the IANA special-purpose registries, rather than a
 * hand-kept list of CIDRs.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { ErrorCode, TributaryError } from '../../errors.ts';

export interface TargetGuardOptions {
  /** Allow loopback, private and other non-public addresses (tests, development). */
  readonly allowPrivateTargets: boolean;
}

/**
 * The end of a refusal at creation: what the rule is, and the setting that lifts it. The setting
 * is per process — the server checks the URL here, and whichever process delivers (role `all` or
 * `workers`) checks the address again at every attempt — so a newcomer who sets it on the server
 * alone sees the endpoint created and every attempt refused.
 */
const PUBLIC_ONLY =
  'webhooks go to public addresses only (for tests and development, WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows private ones: set it on this server and on every process that delivers, role all or workers)';

/** Longer URLs are refused; 2048 is what browsers and most proxies keep. */
const MAX_WEBHOOK_URL_LENGTH = 2048;

const RANGE_NAMES: Readonly<Record<string, string>> = {
  unspecified: 'the unspecified address',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a carrier-grade NAT address',
  private: 'a private address',
  uniqueLocal: 'a unique-local address',
  reserved: 'a reserved address',
  teredo: 'a Teredo tunnel address',
};

/**
 * Cloud platform addresses outside the special ranges: AWS/GCP/Azure/DigitalOcean metadata
 * (link-local, refused anyway, but named) and Azure's WireServer, a public address only reachable
 * from inside Azure. Alibaba's 100.100.100.200 and Oracle's 192.0.0.192 are in special ranges.
 */
const METADATA_ADDRESSES: ReadonlySet<string> = new Set(['169.254.169.254', '168.63.129.16']);

/**
 * Why `ip` may not be a webhook target ("a loopback address", …), or null when it is a public
 * address. Anything that does not parse as an IP is refused.
 *
 * IPv4: everything outside ipaddr.js's `unicast` range. IPv6: global unicast (2000::/3) only,
 * outside its special ranges; an IPv4 address carried inside IPv6 (IPv4-mapped, IPv4-translated,
 * NAT64 64:ff9b::/96, 6to4) is judged as that IPv4 address; Teredo is refused outright.
 */
export function forbiddenAddressReason(ip: string): string | null {
  if (!ipaddr.isValid(ip)) return 'not an IP address';
  const address = ipaddr.parse(ip);
  return address.kind() === 'ipv4' ? ipv4Reason(address as ipaddr.IPv4) : ipv6Reason(address as ipaddr.IPv6);
}

/** Whether a webhook may not be sent to `ip` (see `forbiddenAddressReason`). */
export function isForbiddenAddress(ip: string): boolean {
  return forbiddenAddressReason(ip) !== null;
}

function ipv4Reason(address: ipaddr.IPv4): string | null {
  if (METADATA_ADDRESSES.has(address.toString())) return 'the cloud metadata address';
  const range = address.range();
  return range === 'unicast' ? null : (RANGE_NAMES[range] ?? 'a special-purpose address');
}

function ipv6Reason(address: ipaddr.IPv6): string | null {
  const range = address.range();
  const embedded = embeddedIpv4(address, range);
  if (embedded !== undefined) return embedded === null ? 'a special-purpose address' : ipv4Reason(embedded);
  if (range !== 'unicast') return RANGE_NAMES[range] ?? 'a special-purpose address';
  // Only 2000::/3 is allocated for global unicast; the rest of "unicast" is unassigned space.
  const first = address.parts[0] ?? 0;
  return first >= 0x2000 && first <= 0x3fff ? null : 'a reserved address';
}

/**
 * The IPv4 address an IPv6 one stands for: undefined when it carries none, null when it carries
 * one we do not unpack (RFC 8215's local-use NAT64 prefix).
 */
function embeddedIpv4(address: ipaddr.IPv6, range: string): ipaddr.IPv4 | null | undefined {
  const parts = address.parts;
  const fromParts = (high: number | undefined, low: number | undefined) =>
    new ipaddr.IPv4([(high ?? 0) >> 8, (high ?? 0) & 0xff, (low ?? 0) >> 8, (low ?? 0) & 0xff]);
  switch (range) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return fromParts(parts[6], parts[7]);
    case 'rfc6052':
      // 64:ff9b::/96 keeps the IPv4 address in the last 32 bits; 64:ff9b:1::/48 is local-use.
      return parts[2] === 0 ? fromParts(parts[6], parts[7]) : null;
    case '6to4':
      return fromParts(parts[1], parts[2]);
    default:
      return undefined;
  }
}

/**
 * Checks a webhook URL's shape — http or https, no user:password, at most 2048 characters, a host
 * that is an IP address or a valid DNS name — and, unless private targets are allowed, that its
 * host is not a non-public IP literal or `localhost`.
 * Returns the parsed URL; throws BAD_USER_INPUT with `details.field = 'url'`.
 */
export function assertWebhookUrl(url: string, options: TargetGuardOptions): URL {
  if (url.length > MAX_WEBHOOK_URL_LENGTH) refuse(`The webhook URL is longer than ${MAX_WEBHOOK_URL_LENGTH} characters`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    refuse('The webhook URL is not a valid absolute URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    refuse(`The webhook URL must use http or https, not ${parsed.protocol.slice(0, -1)}`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    refuse('The webhook URL must not contain a user name or password; put credentials in the path or query');
  }
  if (parsed.hostname === '') refuse('The webhook URL has no host');
  const host = hostOf(parsed);
  // Not a name DNS can hold: no lookup would ever find it (and DNS says EINVAL, not "not found").
  if (isIP(host) === 0 && !isDnsName(host)) {
    refuse('The webhook URL\'s host is not a valid DNS name: at most 253 characters, in labels of 1 to 63');
  }
  if (!options.allowPrivateTargets) {
    if (isIP(host) !== 0) {
      const reason = forbiddenAddressReason(host);
      if (reason !== null) refuse(`The webhook URL points to ${host}, ${reason}; ${PUBLIC_ONLY}`);
    } else if (isLocalhost(host)) {
      refuse(`The webhook URL points to ${host}, a loopback address; ${PUBLIC_ONLY}`);
    }
  }
  return parsed;
}

/**
 * Resolves the URL's host with `resolve` — the resolver the attempts use (webhook-dns.ts), so that
 * creation judges the answers the deliveries will get — and refuses it when any of its addresses
 * is not public (unless private targets are allowed): BAD_USER_INPUT for a refused or unknown host,
 * UNAVAILABLE when DNS could not answer now. This is the clear error at creation; the connection
 * itself is checked again at every attempt.
 */
export async function assertResolvableTarget(
  url: URL,
  options: TargetGuardOptions,
  resolve: (host: string) => Promise<readonly { readonly address: string }[]>,
): Promise<void> {
  if (options.allowPrivateTargets) return;
  const host = hostOf(url);
  let addresses: readonly string[];
  try {
    addresses = (await resolve(host)).map((entry) => entry.address);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') refuse(`The webhook URL's host ${host} does not resolve`);
    throw new TributaryError(ErrorCode.UNAVAILABLE, `The webhook URL's host ${host} could not be resolved right now`, {
      details: { field: 'url' },
      cause: error,
    });
  }
  for (const address of addresses) {
    const reason = forbiddenAddressReason(address);
    if (reason !== null) {
      const via = address === host ? '' : ` (${host} resolves to it)`;
      refuse(`The webhook URL points to ${address}${via}, ${reason}; ${PUBLIC_ONLY}`);
    }
  }
}

/** A host name DNS can carry: at most 253 characters, each dot-separated label 1 to 63. */
function isDnsName(host: string): boolean {
  return host.length <= 253 && host.split('.').every((label) => label.length >= 1 && label.length <= 63);
}

/** The URL's host without IPv6 brackets or a trailing dot. */
function hostOf(url: URL): string {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
}

/** `localhost` and its subdomains always mean this machine (RFC 6761 §6.3). */
function isLocalhost(host: string): boolean {
  const lower = host.toLowerCase();
  return lower === 'localhost' || lower.endsWith('.localhost');
}

function refuse(message: string): never {
  throw new TributaryError(ErrorCode.BAD_USER_INPUT, message, { details: { field: 'url' } });
}
