import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { verifyWebhook } from '@tributary/client/webhooks';
import { createWebhookHttpClient, WEBHOOK_USER_AGENT } from '../../src/pipeline/webhooks/webhook-http.ts';
import { MAX_ERROR_LENGTH } from '../../src/pipeline/webhooks/attempt-errors.ts';
import type { WebhookHttpClient, WebhookHttpClientOptions } from '../../src/pipeline/webhooks/webhook-http.ts';
import { newWebhookSecret, signWebhook } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { deferred, freePort, waitFor } from '../helpers/index.ts';

interface ReceivedRequest {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

interface Receiver {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
  /** TCP connections accepted so far. */
  connections(): number;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

/** A real HTTP server on loopback, port 0, closed when the test ends. */
async function startReceiver(handler: Handler): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let connections = 0;
  const server = createServer((request, response) => {
    requests.push({ method: request.method, url: request.url, headers: request.headers });
    void handler(request, response);
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, port, requests, connections: () => connections };
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** Reads the request, then answers with `status`, `headers` and `body`. */
function answer(status: number, headers: Record<string, string> = {}, body = ''): Handler {
  return async (request, response) => {
    await readBody(request);
    response.writeHead(status, headers).end(body);
  };
}

function client(options: Partial<WebhookHttpClientOptions> = {}): WebhookHttpClient {
  const created = createWebhookHttpClient({ allowPrivateTargets: true, ...options });
  onTestFinished(() => created.close());
  return created;
}

const body = JSON.stringify({ id: 'evt_http_1', type: 'order.created', payload: { orderId: 7 } });

function post(webhooks: WebhookHttpClient, url: string, timeoutMs = 5000) {
  return webhooks.send({ url, headers: {}, body, timeoutMs });
}

describe('webhook HTTP client', () => {
  it('delivers on 2xx: the receiver gets the signed body, the headers and a keep-alive connection', async () => {
    const received: { raw: Buffer; headers: IncomingHttpHeaders }[] = [];
    const receiver = await startReceiver(async (request, response) => {
      received.push({ raw: await readBody(request), headers: request.headers });
      response.writeHead(200, { 'content-type': 'text/plain' }).end('thanks');
    });
    const secret = newWebhookSecret();
    const webhooks = client();
    const signature = signWebhook({ id: 'evt_http_1', timestampSeconds: Math.floor(Date.now() / 1000), body, secrets: [secret] });

    const results = [];
    for (let attempt = 0; attempt < 5; attempt += 1) {
      results.push(await webhooks.send({ url: `${receiver.origin}/hooks/in?team=7`, headers: signature, body, timeoutMs: 5000 }));
    }

    for (const result of results) {
      expect(result).toMatchObject({ outcome: 'delivered', status: 200, error: null, responseExcerpt: 'thanks', retryAfterMs: null });
      expect(result.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(receiver.requests.map((request) => `${request.method} ${request.url}`)).toEqual(Array(5).fill('POST /hooks/in?team=7'));
    const [delivery] = received;
    expect(delivery?.raw.toString('utf8')).toBe(body);
    expect(delivery?.headers).toMatchObject({ 'content-type': 'application/json', 'user-agent': WEBHOOK_USER_AGENT, 'webhook-id': 'evt_http_1' });
    expect(WEBHOOK_USER_AGENT).toMatch(/^Tributary-Webhooks\/\d+\.\d+\.\d+/);
    expect(verifyWebhook(delivery?.raw ?? '', delivery?.headers ?? {}, secret)).toMatchObject({ id: 'evt_http_1', payload: JSON.parse(body) as unknown });
    // Keep-alive: five requests, at most two connections. (undici's pool counts a new connection
    // busy until its first 'drain' event, a tick after the response, so the second request may
    // open a second one; from then on they are reused.)
    expect(receiver.connections()).toBeLessThanOrEqual(2);
  });

  it('a 500 is a failed attempt with the status and the start of the answer', async () => {
    const receiver = await startReceiver(answer(500, {}, 'database is down'));
    const result = await post(client(), receiver.origin);
    expect(result).toMatchObject({ outcome: 'failed', status: 500, error: null, responseExcerpt: 'database is down', retryAfterMs: null });
  });

  it('410 Gone is reported as gone', async () => {
    const receiver = await startReceiver(answer(410));
    const result = await post(client(), receiver.origin);
    expect(result).toMatchObject({ outcome: 'gone', status: 410, error: null, responseExcerpt: null });
  });

  it('429 is throttled, with Retry-After in seconds', async () => {
    const receiver = await startReceiver(answer(429, { 'retry-after': '120' }));
    expect(await post(client(), receiver.origin)).toMatchObject({ outcome: 'throttled', status: 429, retryAfterMs: 120_000 });
  });

  it('429 with Retry-After as an HTTP-date is the time until that date', async () => {
    const now = Date.parse('2030-06-01T12:00:00Z');
    const receiver = await startReceiver(answer(429, { 'retry-after': new Date(now + 90_000).toUTCString() }));
    expect(await post(client({ now: () => now }), receiver.origin)).toMatchObject({ outcome: 'throttled', status: 429, retryAfterMs: 90_000 });
  });

  it('429 without a readable Retry-After leaves the pause to the schedule', async () => {
    const receiver = await startReceiver(async (request, response) => {
      await readBody(request);
      const header = request.url === '/garbled' ? { 'retry-after': 'soon' } : {};
      response.writeHead(429, header).end();
    });
    const webhooks = client();
    expect(await post(webhooks, receiver.origin)).toMatchObject({ outcome: 'throttled', retryAfterMs: null });
    expect(await post(webhooks, `${receiver.origin}/garbled`)).toMatchObject({ outcome: 'throttled', retryAfterMs: null });
  });

  it('503 is throttled, with its Retry-After', async () => {
    const receiver = await startReceiver(answer(503, { 'retry-after': '30' }, 'maintenance'));
    expect(await post(client(), receiver.origin)).toMatchObject({
      outcome: 'throttled',
      status: 503,
      retryAfterMs: 30_000,
      responseExcerpt: 'maintenance',
    });
  });

  it('a receiver that never answers: failed after the timeout, and the connection is closed, not left open', async () => {
    const closed = deferred();
    const receiver = await startReceiver((request) => {
      request.socket.once('close', () => closed.resolve());
    });
    const result = await post(client(), receiver.origin, 300);
    expect(result).toMatchObject({ outcome: 'failed', status: null, error: 'timeout after 300 ms', responseExcerpt: null });
    expect(receiver.requests).toHaveLength(1);
    await closed.promise;
  });

  it('an attempt still waiting for a connection at its timeout is failed then, and never sent afterwards', async () => {
    const held = deferred();
    const receiver = await startReceiver(async (request, response) => {
      await readBody(request);
      await held.promise;
      response.writeHead(204).end();
    });
    // One connection per origin: the second attempt queues behind the first, which the receiver holds.
    const webhooks = client({ connectionsPerOrigin: 1 });
    const first = post(webhooks, `${receiver.origin}/first`);
    await waitFor(() => receiver.requests.length === 1);
    const second = await post(webhooks, `${receiver.origin}/second`, 200);
    expect(second).toMatchObject({ outcome: 'failed', status: null, error: 'timeout after 200 ms' });
    held.resolve();
    expect(await first).toMatchObject({ outcome: 'delivered', status: 204 });
    // The connection is free again: a third attempt goes out on it, the timed-out one does not.
    expect(await post(webhooks, `${receiver.origin}/third`)).toMatchObject({ outcome: 'delivered' });
    expect(receiver.requests.map((request) => request.url)).toEqual(['/first', '/third']);
  });

  it('a 2xx whose body stalls past the timeout is delivered, with the part of the body that arrived', async () => {
    const closed = deferred();
    const receiver = await startReceiver(async (request, response) => {
      await readBody(request);
      response.socket?.once('close', () => closed.resolve());
      response.writeHead(200, { 'content-length': '100' });
      response.write('partial');
    });
    const result = await post(client(), receiver.origin, 300);
    expect(result).toMatchObject({ outcome: 'delivered', status: 200, error: null, responseExcerpt: 'partial' });
    // The rest was not waited for: the connection was closed.
    await closed.promise;
  });

  it('a receiver that destroys the socket mid-request: failed, no status, says the connection was closed', async () => {
    const receiver = await startReceiver((request) => {
      request.socket.destroy();
    });
    const result = await post(client(), receiver.origin);
    expect(result).toMatchObject({ outcome: 'failed', status: null, responseExcerpt: null });
    expect(result.error).toMatch(/^connection (closed|reset) by the receiver$/);
  });

  it('a refused connection is failed with a short reason', async () => {
    const port = await freePort();
    const result = await post(client(), `http://127.0.0.1:${port}/hook`);
    expect(result).toMatchObject({ outcome: 'failed', status: null, error: 'connection refused' });
  });

  it('a 302 is not followed, and its error names the Location it points to', async () => {
    const receiver = await startReceiver(answer(302, { location: '/elsewhere' }));
    const result = await post(client(), `${receiver.origin}/hook`);
    expect(result).toMatchObject({ outcome: 'failed', status: 302, error: 'redirect not followed: 302 to /elsewhere' });
    expect(receiver.requests.map((request) => request.url)).toEqual(['/hook']);

    const moved = await startReceiver(answer(301, { location: 'https://example.com/new' }));
    expect(await post(client(), `${moved.origin}/hook`)).toMatchObject({ outcome: 'failed', status: 301, error: 'redirect not followed: 301 to https://example.com/new' });
  });

  it('a redirect without a Location is not followed, and its error says only the status', async () => {
    const receiver = await startReceiver(answer(307));
    expect(await post(client(), `${receiver.origin}/hook`)).toMatchObject({ outcome: 'failed', status: 307, error: 'redirect not followed: 307', responseExcerpt: null });
    expect(receiver.requests.map((request) => request.url)).toEqual(['/hook']);
  });

  it('a redirect’s Location is named without credentials, query or fragment, and cut to keep the error short', async () => {
    const receiver = await startReceiver(async (request, response) => {
      await readBody(request);
      const location =
        request.url === '/long'
          ? `https://example.com/${'a'.repeat(500)}?token=secret`
          : request.url === '/relative'
            ? '//user:password@example.com/hook?token=secret'
            : 'https://user:password@example.com:8443/hook?token=secret#part';
      response.writeHead(308, { location, 'x-other': 'not in the error' }).end();
    });
    const webhooks = client();
    expect(await post(webhooks, `${receiver.origin}/hook`)).toMatchObject({ outcome: 'failed', status: 308, error: 'redirect not followed: 308 to https://example.com:8443/hook?…' });
    // Scheme-relative: no scheme, and its credentials still left out.
    expect(await post(webhooks, `${receiver.origin}/relative`)).toMatchObject({ error: 'redirect not followed: 308 to //example.com/hook?…' });
    const long = await post(webhooks, `${receiver.origin}/long`);
    expect(long.error).toMatch(/^redirect not followed: 308 to https:\/\/example\.com\/a+…$/);
    expect(long.error).toHaveLength(200);
  });

  it('a huge response is not read: the excerpt is capped and the connection closed long before the end', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const finished = deferred<{ written: number; completed: boolean }>();
    const receiver = await startReceiver(async (request, response) => {
      await readBody(request);
      response.writeHead(200, { 'content-length': String(total) });
      let written = 0;
      response.once('close', () => finished.resolve({ written, completed: response.writableFinished }));
      // Bounded: at most total / chunk writes, each waiting for the client to take the previous ones.
      while (written < total && !response.destroyed) {
        written += chunk.length;
        if (!response.write(chunk)) {
          await new Promise<void>((resolve) => {
            const resume = () => {
              response.off('drain', resume).off('close', resume);
              resolve();
            };
            response.on('drain', resume).on('close', resume);
          });
        }
      }
      response.end();
    });
    const webhooks = client();

    const result = await post(webhooks, receiver.origin);
    expect(result).toMatchObject({ outcome: 'delivered', status: 200, error: null });
    expect(result.responseExcerpt).toBe('x'.repeat(1024));
    const { written, completed } = await finished.promise;
    expect(completed).toBe(false);
    expect(written).toBeLessThan(total);

    const small = await startReceiver(answer(200, {}, 'y'.repeat(100)));
    const capped = await client({ maxResponseExcerptBytes: 16 }).send({ url: small.origin, headers: {}, body, timeoutMs: 5000 });
    expect(capped.responseExcerpt).toBe('y'.repeat(16));
  });

  it('with private targets refused, 127.0.0.1 and localhost are refused at connect: the receiver sees no connection', async () => {
    const receiver = await startReceiver(answer(200));
    const strict = client({ allowPrivateTargets: false });

    const literal = await post(strict, `${receiver.origin}/hook`);
    const named = await post(strict, `http://localhost:${receiver.port}/hook`);

    expect(literal).toMatchObject({ outcome: 'refused', status: null, error: 'refused target: 127.0.0.1 is a loopback address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it)' });
    expect(named).toMatchObject({ outcome: 'refused', status: null });
    expect(named.error).toMatch(/^refused target: localhost resolves to (127\.0\.0\.1|::1), a loopback address \(WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it\)$/);
    // IPv6 literals, and IPv4 written inside IPv6, are checked before any socket is opened.
    expect(await post(strict, `http://[::1]:${receiver.port}/hook`)).toMatchObject({ outcome: 'refused', error: 'refused target: ::1 is a loopback address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it)' });
    expect(await post(strict, `http://[::ffff:127.0.0.1]:${receiver.port}/hook`)).toMatchObject({
      error: 'refused target: ::ffff:7f00:1 is a loopback address (WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it)',
    });
    // A long name is cut, so the error stays within MAX_ERROR_LENGTH and still names the setting.
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.localhost`;
    const cut = await post(strict, `http://${long}:${receiver.port}/hook`);
    expect(cut).toMatchObject({ outcome: 'refused', error: expect.stringMatching(/^refused target: a+\.?… resolves to .* \(WEBHOOK_ALLOW_PRIVATE_TARGETS=true on the processes that deliver allows it\)$/) as unknown });
    expect(cut.error?.length).toBeLessThanOrEqual(MAX_ERROR_LENGTH);
    // The same receiver is reachable with private targets allowed: the refusal was the guard's.
    expect(await post(client(), `${receiver.origin}/ok`)).toMatchObject({ outcome: 'delivered' });
    expect(receiver.requests.map((request) => request.url)).toEqual(['/ok']);
    expect(receiver.connections()).toBe(1);
  });

  it('never throws: a malformed URL or a closed client is a failed attempt', async () => {
    const webhooks = client();
    expect(await post(webhooks, 'not a url')).toMatchObject({ outcome: 'failed', status: null, error: 'invalid URL' });
    expect(await post(webhooks, 'ftp://127.0.0.1/x')).toMatchObject({ outcome: 'failed', error: 'unsupported protocol ftp:' });
    await webhooks.close();
    await webhooks.close();
    expect(await post(webhooks, 'http://127.0.0.1:1/x')).toMatchObject({ outcome: 'failed', error: 'webhook client closed' });
  });
});
