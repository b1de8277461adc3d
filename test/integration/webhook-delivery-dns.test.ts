/**
 * Webhook receivers' names resolved with c-ares (webhook-dns.ts), against DNS servers of the
 * test's own on loopback UDP (given to the resolver as its nameservers): one answers `fast.test`
 * and `short.test` and says other names do not exist, but never answers a `silent` name — a
 * receiver whose nameservers do not answer. dns.lookup ran on libuv's thread pool (4 threads): a
 * few lookups of such a name held every other endpoint's connections (a repro with a private
 * /etc/resolv.conf: scratch/review-webhook-delivery/run-dns-threadpool.sh). Here a silent name
 * holds nothing but its own lookups, lookups of one name under way are asked once, and answers are
 * kept for their TTL, in a bounded cache.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { assertResolvableTarget } from '../../src/pipeline/webhooks/target-guard.ts';
import { createWebhookDns, type WebhookDns, type WebhookDnsOptions } from '../../src/pipeline/webhooks/webhook-dns.ts';
import { createWebhookHttpClient, type AttemptResult } from '../../src/pipeline/webhooks/webhook-http.ts';

const A = 1;
const AAAA = 28;
/** The records the test server answers with, by name: IPv4 addresses only, with their TTL in seconds. */
const RECORDS: Readonly<Record<string, { readonly address: readonly number[]; readonly ttl: number }>> = {
  'fast.test': { address: [127, 0, 0, 1], ttl: 60 },
  'short.test': { address: [127, 0, 0, 1], ttl: 5 },
  'other.test': { address: [127, 0, 0, 1], ttl: 60 },
};

interface TestDnsServer {
  /** `127.0.0.1:<port>`, as a resolver's server. */
  readonly server: string;
  /** Queries received for `name` of `type` (A or AAAA). */
  asked(name: string, type: number): number;
}

/** A DNS server on loopback UDP, closed after the test: RECORDS answered, names containing `silent` never, the others NXDOMAIN. */
async function startDnsServer(): Promise<TestDnsServer> {
  const socket: Socket = createSocket('udp4');
  const queries = new Map<string, number>();
  socket.on('message', (query, peer) => {
    let offset = 12;
    const labels: string[] = [];
    while (query[offset] !== 0) {
      const length = query[offset]!;
      labels.push(query.subarray(offset + 1, offset + 1 + length).toString());
      offset += length + 1;
    }
    const name = labels.join('.').toLowerCase();
    const type = query.readUInt16BE(offset + 1);
    queries.set(`${name} ${type}`, (queries.get(`${name} ${type}`) ?? 0) + 1);
    if (name.includes('silent')) return;
    const record = RECORDS[name];
    const answers =
      record && type === A ? Buffer.from([0xc0, 0x0c, 0, A, 0, 1, ...[24, 16, 8, 0].map((shift) => (record.ttl >> shift) & 0xff), 0, 4, ...record.address]) : Buffer.alloc(0);
    // The question as asked; the answer (if any) after it. NXDOMAIN (rcode 3) for a name without records.
    const header = Buffer.from([query[0]!, query[1]!, 0x81, record ? 0x80 : 0x83, 0, 1, 0, answers.length > 0 ? 1 : 0, 0, 0, 0, 0]);
    socket.send(Buffer.concat([header, query.subarray(12, offset + 5), answers]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  const { port } = socket.address();
  return { server: `127.0.0.1:${port}`, asked: (name, type) => queries.get(`${name} ${type}`) ?? 0 };
}

function dnsOf(server: TestDnsServer, options: WebhookDnsOptions = {}): WebhookDns {
  const dns = createWebhookDns({ servers: [server.server], ...options });
  onTestFinished(() => dns.close());
  return dns;
}

/** `promise`, with whether it has settled yet. */
function watched<T>(promise: Promise<T>): { readonly promise: Promise<T>; settled: () => boolean } {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { promise, settled: () => settled };
}

const LOOPBACK_V4 = [{ address: '127.0.0.1', family: 4 }];

describe('webhook DNS', () => {
  it('resolves a name while lookups of names whose nameserver never answers are under way', async () => {
    const server = await startDnsServer();
    const dns = dnsOf(server, { timeoutMs: 60_000, tries: 1 });
    // More lookups of silent names than libuv's thread pool has threads.
    const silent = Array.from({ length: 20 }, (_, n) => watched(dns.resolve(`silent-${n}.test`)));

    expect(await dns.resolve('fast.test')).toEqual(LOOPBACK_V4);
    expect(silent.filter((lookup) => lookup.settled())).toEqual([]);
    for (let n = 0; n < 20; n += 1) expect(server.asked(`silent-${n}.test`, A)).toBe(1);

    // Closed, the lookups still waiting fail as DNS not answering for now.
    dns.close();
    for (const lookup of silent) await expect(lookup.promise).rejects.toMatchObject({ code: 'EAI_AGAIN' });
  });

  it('asks once for lookups of one name under way, and answers every one of them', async () => {
    const server = await startDnsServer();
    const dns = dnsOf(server);
    const answers = await Promise.all(Array.from({ length: 5 }, () => dns.resolve('fast.test')));
    expect(answers).toEqual(Array.from({ length: 5 }, () => LOOPBACK_V4));
    expect([server.asked('fast.test', A), server.asked('fast.test', AAAA)]).toEqual([1, 1]);
  });

  it('keeps an answer for its TTL, a name written any way, and asks again once it has run out', async () => {
    const server = await startDnsServer();
    let clock = 1_000_000;
    const dns = dnsOf(server, { now: () => clock });
    expect(await dns.resolve('short.test')).toEqual(LOOPBACK_V4);
    clock += 4_999;
    expect(await dns.resolve('SHORT.test.')).toEqual(LOOPBACK_V4);
    expect(server.asked('short.test', A)).toBe(1);
    clock += 2;
    expect(await dns.resolve('short.test')).toEqual(LOOPBACK_V4);
    expect(server.asked('short.test', A)).toBe(2);
  });

  it('keeps the answers of a bounded number of names, the oldest dropped first', async () => {
    const server = await startDnsServer();
    const dns = dnsOf(server, { maxCached: 2 });
    for (const name of ['fast.test', 'short.test', 'other.test', 'other.test', 'fast.test']) await dns.resolve(name);
    expect(['fast.test', 'short.test', 'other.test'].map((name) => server.asked(name, A))).toEqual([2, 1, 1]);
  });

  it('fails a name DNS does not know with ENOTFOUND, and one it does not answer with EAI_AGAIN once its tries are spent', async () => {
    const server = await startDnsServer();
    const dns = dnsOf(server, { timeoutMs: 50, tries: 1 });
    await expect(dns.resolve('unknown.test')).rejects.toMatchObject({ code: 'ENOTFOUND', hostname: 'unknown.test' });
    await expect(dns.resolve('silent.test')).rejects.toMatchObject({ code: 'EAI_AGAIN', hostname: 'silent.test' });
  });

  it('answers localhost and its subdomains with loopback addresses, asking no nameserver', async () => {
    const server = await startDnsServer();
    const dns = dnsOf(server);
    const both = [...LOOPBACK_V4, { address: '::1', family: 6 }];
    expect(await dns.resolve('localhost')).toEqual(both);
    expect(await dns.resolve('LocalHost.')).toEqual(both);
    expect(await dns.resolve('api.localhost', 4)).toEqual(LOOPBACK_V4);
    expect(await dns.resolve('localhost', 6)).toEqual([{ address: '::1', family: 6 }]);
    expect(server.asked('localhost', A) + server.asked('localhost', AAAA)).toBe(0);
  });
});

describe('webhook attempts to a name resolved by DNS', () => {
  it('reach a receiver, or refuse its private address, while attempts to a name that DNS never answers wait', { timeout: 30_000 }, async () => {
    const server = await startDnsServer();
    const receiver = createServer((request, response) => {
      request.resume();
      request.on('end', () => response.writeHead(204).end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
    const { port } = receiver.address() as AddressInfo;
    const dns = { servers: [server.server], timeoutMs: 60_000, tries: 1 };
    const open = createWebhookHttpClient({ allowPrivateTargets: true, dns });
    const guarded = createWebhookHttpClient({ allowPrivateTargets: false, dns });
    onTestFinished(() => Promise.all([open.abort(), guarded.abort()]).then(() => undefined));
    const send = (client: typeof open, host: string): Promise<AttemptResult> => client.send({ url: `http://${host}:${port}/hook`, headers: {}, body: '{}', timeoutMs: 60_000 });

    // An endpoint's attempts to a receiver whose DNS never answers, each wanting a connection.
    const silent = Array.from({ length: 10 }, () => watched(send(open, 'silent.test')));
    expect(await send(open, 'fast.test')).toMatchObject({ outcome: 'delivered', status: 204 });
    expect(await send(guarded, 'fast.test')).toMatchObject({ outcome: 'refused', error: 'refused target: fast.test resolves to 127.0.0.1, a loopback address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it)' });
    expect(silent.filter((attempt) => attempt.settled())).toEqual([]);
    // Ten attempts, one lookup.
    expect(server.asked('silent.test', A)).toBe(1);
  });
});

describe('a webhook URL checked at creation', () => {
  it('is judged on the answers its attempts get: a private address refused, an unknown name refused, a silent name UNAVAILABLE', async () => {
    const server = await startDnsServer();
    const dns = dnsOf(server, { timeoutMs: 50, tries: 1 });
    const check = (host: string) => assertResolvableTarget(new URL(`https://${host}/hook`), { allowPrivateTargets: false }, (name) => dns.resolve(name));
    await expect(check('fast.test')).rejects.toMatchObject({
      code: ErrorCode.BAD_USER_INPUT,
      message: 'The webhook URL points to 127.0.0.1 (fast.test resolves to it), a loopback address; webhooks go to public addresses only (for tests and development, WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows private ones: set it on this server and on every process that delivers, role all or workers)',
      details: { field: 'url' },
    });
    await expect(check('unknown.test')).rejects.toMatchObject({ code: ErrorCode.BAD_USER_INPUT, message: "The webhook URL's host unknown.test does not resolve" });
    await expect(check('silent.test')).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: "The webhook URL's host silent.test could not be resolved right now" });
    expect(server.asked('fast.test', A)).toBe(1);
  });
});
