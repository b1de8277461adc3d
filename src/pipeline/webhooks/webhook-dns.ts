/**
 * How webhook attempts find their receivers' addresses: DNS through c-ares (`Resolver`), never
 * `dns.lookup`. getaddrinfo runs on libuv's thread pool — 4 threads, shared with fs, crypto and
 * zlib — and goes on after the attempt that asked has timed out: a receiver whose nameservers never
 * answered held all four, and every other endpoint's new connection, any tenant's, failed with a
 * timeout behind it. c-ares waits on the event loop's sockets: such a name costs a pending query.
 *
 * - Lookups of one name under way are one: an endpoint's attempts that each open a connection ask
 *   once, and a silent name holds one query per family, however many attempts wait for it.
 * - Answers are kept for their TTL (at most MAX_TTL_MS), for `maxCached` names at most (the oldest
 *   dropped first); failures are not kept. What is kept is checked at every connection anyway (the
 *   private-target guard reads the addresses each lookup returns).
 * - `localhost` and its subdomains are loopback, without a query (RFC 6761 §6.3): the system
 *   resolver found them in /etc/hosts, which c-ares does not read.
 * - Other names only the hosts file knows are not seen by DNS. Where private targets are allowed
 *   (tests, development: a compose file's `extra_hosts`), a name DNS does not know is looked up
 *   again with the system resolver (`hostsFallback`). Not in production: there, any name whose
 *   nameservers say it does not exist would put getaddrinfo back on the thread pool — and a name
 *   only this machine's hosts file knows is the operator's, not a tenant's receiver.
 *
 * Failures carry getaddrinfo's codes, as `dns.lookup`'s did (attempt-errors.ts names them):
 * ENOTFOUND when no such name or address exists, EAI_AGAIN when DNS did not answer for now (a
 * timeout, a server failure or refusal).
 */
import { lookup as systemLookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

export interface WebhookDns {
  /** The addresses of `hostname`, IPv4 first; of one family when `family` is 4 or 6. */
  resolve(hostname: string, family?: number): Promise<readonly ResolvedAddress[]>;
  /** Cancels the queries under way (their lookups fail with EAI_AGAIN) and forgets every answer. Idempotent. */
  close(): void;
}

export interface WebhookDnsOptions {
  /** Nameservers asked, as `ip` or `ip:port` (`[ip6]:port`). @default the system's (/etc/resolv.conf) */
  readonly servers?: readonly string[];
  /** How long one try of a query waits for its answer, in ms (c-ares doubles it at each further try). @default 2000 */
  readonly timeoutMs?: number;
  /** Tries of a query per nameserver. @default 2 */
  readonly tries?: number;
  /** Names whose answers are kept at most. @default 1000 */
  readonly maxCached?: number;
  /** Looks a name DNS does not know up with the system resolver too (hosts file). @default false */
  readonly hostsFallback?: boolean;
  /** The clock answers expire on, in ms. @default Date.now */
  readonly now?: () => number;
}

/** An answer is kept no longer than this, whatever its TTL, in ms. */
const MAX_TTL_MS = 30_000;
/** c-ares' codes for "no such name" and "no address of that family". */
const NOT_FOUND: ReadonlySet<string> = new Set(['ENOTFOUND', 'ENODATA']);
const LOOPBACK: readonly ResolvedAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];

interface Kept {
  readonly addresses: readonly ResolvedAddress[];
  readonly until: number;
}

export function createWebhookDns(options: WebhookDnsOptions = {}): WebhookDns {
  const now = options.now ?? Date.now;
  const maxCached = options.maxCached ?? 1_000;
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 2_000, tries: options.tries ?? 2 });
  if (options.servers) resolver.setServers(options.servers);
  /** By family and name (`4 example.com`); a Map keeps insertion order: the oldest first. */
  const kept = new Map<string, Kept>();
  const underWay = new Map<string, Promise<readonly ResolvedAddress[]>>();

  const query = async (name: string, family: number): Promise<readonly ResolvedAddress[]> => {
    // A family not asked for answers nothing, as a name without addresses of it would.
    const [v4, v6] = await Promise.allSettled([
      family === 6 ? Promise.resolve([]) : resolver.resolve4(name, { ttl: true }),
      family === 4 ? Promise.resolve([]) : resolver.resolve6(name, { ttl: true }),
    ]);
    const records = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (records.length > 0) {
      const addresses = records.map(({ address }): ResolvedAddress => ({ address, family: isIP(address) === 6 ? 6 : 4 }));
      const ttlMs = Math.min(MAX_TTL_MS, ...records.map((record) => record.ttl * 1000));
      if (ttlMs > 0) keep(`${family} ${name}`, { addresses, until: now() + ttlMs });
      return addresses;
    }
    const codes = [v4, v6].map((settled) => (settled.status === 'rejected' ? (settled.reason as { code?: unknown }).code : 'ENODATA'));
    const notFound = codes.every((code) => typeof code === 'string' && NOT_FOUND.has(code));
    if (notFound && options.hostsFallback === true) {
      const found = await systemLookup(name, { all: true, family }).catch(() => []);
      if (found.length > 0) return found.map(({ address }): ResolvedAddress => ({ address, family: isIP(address) === 6 ? 6 : 4 }));
    }
    throw Object.assign(new Error(`getaddrinfo ${notFound ? 'ENOTFOUND' : 'EAI_AGAIN'} ${name}`), { code: notFound ? 'ENOTFOUND' : 'EAI_AGAIN', hostname: name, syscall: 'getaddrinfo' });
  };

  const keep = (key: string, answer: Kept) => {
    kept.delete(key);
    if (kept.size >= maxCached) {
      const [oldest] = kept.keys();
      if (oldest !== undefined) kept.delete(oldest);
    }
    kept.set(key, answer);
  };

  return {
    resolve(hostname, family = 0) {
      const name = hostname.toLowerCase().replace(/\.$/, '');
      const literal = isIP(name);
      if (literal !== 0) return Promise.resolve([{ address: name, family: literal === 6 ? 6 : 4 }]);
      const wanted = family === 4 || family === 6 ? family : 0;
      if (name === 'localhost' || name.endsWith('.localhost')) return Promise.resolve(LOOPBACK.filter((address) => wanted === 0 || address.family === wanted));
      const key = `${wanted} ${name}`;
      const answer = kept.get(key);
      if (answer !== undefined && answer.until > now()) return Promise.resolve(answer.addresses);
      let asked = underWay.get(key);
      if (asked === undefined) {
        asked = query(name, wanted).finally(() => underWay.delete(key));
        underWay.set(key, asked);
      }
      return asked;
    },
    close() {
      resolver.cancel();
      kept.clear();
    },
  };
}
