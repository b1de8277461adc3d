/**
 * A graceful stop of role `all` (`npm start`): the process takes no new work first — `/ready`
 * 503, the listener closed, new sockets refused, open ones closed with 1001 — while its workers
 * still hold a webhook attempt; then the workers stop, then the rest, the database last, all
 * within one SHUTDOWN_TIMEOUT_MS counted from the signal.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { startMainProcess } from '../helpers/main-process.ts';
import { captureLogs, postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { deferred } from '../helpers/wait-for.ts';
import { pgliteDataDir } from '../helpers/pglite-template.ts';

/** A webhook receiver that never answers: its attempt stays in flight until Tributary cuts it. */
async function hangingReceiver(): Promise<{ url: string; received: Promise<void>; inFlight: () => boolean; cut: Promise<void> }> {
  const received = deferred<void>();
  const cut = deferred<void>();
  let request: IncomingMessage | undefined;
  const server = createServer((incoming) => {
    request = incoming;
    incoming.resume();
    incoming.socket.once('close', () => cut.resolve());
    received.resolve();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook`, received: received.promise, inFlight: () => request !== undefined && !request.socket.destroyed, cut: cut.promise };
}

/** An endpoint for every event to `receiverUrl`, and one event published: its attempt goes out. */
async function sendAnAttempt(graphqlUrl: string, receiverUrl: string): Promise<void> {
  const created = await postGraphQL(graphqlUrl, {
    query: 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }',
    variables: { input: { url: receiverUrl, events: ['*'] } },
  });
  expect(created.body.errors).toBeUndefined();
  const published = await postGraphQL(graphqlUrl, { query: 'mutation { publish(topic: "orders", type: "order.created", payload: { n: 1 }) { id } }' });
  expect(published.body.errors).toBeUndefined();
}

/** One client frame (masked, as RFC 6455 §5.3 requires of a client) carrying `text`. */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, index) => byte ^ mask[index % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/**
 * A graphql-ws client that completes the handshake and connection_init, then never answers again
 * (a frozen tab, a stalled proxy): the server's close frame gets no reply.
 */
async function frozenClient(port: number): Promise<{ socket: Socket; closed: Promise<unknown> }> {
  const socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  let received = '';
  const acknowledged = deferred<void>();
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    if (received.includes('HTTP/1.1 101') && received.includes('connection_ack')) acknowledged.resolve();
  });
  socket.write(
    'GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`,
  );
  socket.write(textFrame(JSON.stringify({ type: 'connection_init' })));
  await acknowledged.promise;
  return { socket, closed };
}

/** Whether a new WebSocket to `url` opens (true) or is refused (false). */
function socketOpens(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, 'graphql-transport-ws');
    socket.once('open', () => {
      socket.terminate();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('a graceful stop of role all', () => {
  it('says 503 on /ready and refuses new sockets while a webhook attempt is still in flight, then stops the workers and the rest', async () => {
    const receiver = await hangingReceiver();
    const logs = captureLogs();
    const server = await startTestServer(
      { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', SHUTDOWN_TIMEOUT_MS: '4000', LOG_LEVEL: 'debug' },
      { autoDispose: false, logDestination: logs },
    );
    onTestFinished(() => server.dispose());
    await sendAnAttempt(server.graphqlUrl, receiver.url);
    await receiver.received;
    // A load balancer's probe on a connection it opened before the stop: its request is not complete yet.
    const probe = connect(server.port, '127.0.0.1');
    onTestFinished(() => void probe.destroy());
    await once(probe, 'connect');
    probe.write('GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n');

    let answer = '';
    const answered = deferred<void>();
    probe.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('"ready"')) answered.resolve();
    });
    const disposing = server.dispose();
    probe.write('\r\n');
    await answered.promise;
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toContain('{"ready":false,"stopping":true}');
    await expect(fetch(`${server.url}/ready`)).rejects.toThrow();
    expect(await socketOpens(server.wsUrl)).toBe(false);
    expect(receiver.inFlight()).toBe(true);

    await disposing;
    await receiver.cut;
    const steps = logs.lines.filter((line) => line.msg === 'shutdown step done').map((line) => line.step);
    expect(steps).toEqual(['stop accepting', 'workers', 'server', 'cdc', 'sync', 'dashboard', 'pipeline', 'clients']);
    const messages = logs.lines.map((line) => line.msg);
    // The attempt was cut while the workers stopped, after the server had stopped taking work.
    const stoppedAccepting = logs.lines.findIndex((line) => line.msg === 'shutdown step done' && line.step === 'stop accepting');
    expect(messages.indexOf('webhook attempts still in flight at shutdown: cut, to be retried')).toBeGreaterThan(stoppedAccepting);
  });

  it('with a receiver that never answers and a client that never answers the close frame, exits 0 within SHUTDOWN_TIMEOUT_MS, the database closed', { timeout: 60_000 }, async () => {
    const receiver = await hangingReceiver();
    const dataDir = await pgliteDataDir();
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const running = await startMainProcess({ DATA_DIR: dataDir, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', SHUTDOWN_TIMEOUT_MS: '10000', LOG_LEVEL: 'debug' });
    const graphqlUrl = `http://127.0.0.1:${running.port}/graphql`;
    await sendAnAttempt(graphqlUrl, receiver.url);
    await receiver.received;
    const frozen = await frozenClient(running.port);

    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    await frozen.closed;
    await receiver.cut;

    const messages = running.logs.map((entry) => entry['msg']);
    expect(messages).not.toContain('shutdown took too long; exiting');
    const order = [
      'shutting down',
      'sockets did not close in time; terminating',
      'webhook attempts still in flight at shutdown: cut, to be retried',
      'stopped',
    ].map((message) => messages.indexOf(message));
    expect(order.every((index) => index >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const steps = running.logs.filter((entry) => entry['msg'] === 'shutdown step done').map((entry) => entry['step']);
    // Seen once out of order in CI ('clients' third, its lines' times in order): a write to standard
    // output still in flight at the exit came out after the lines logged later (the next test).
    // The shutdown's log lines, with their times, to tell why if it is seen again.
    const shutdownLines = running.logs.filter((entry) => typeof entry['msg'] === 'string' && /shutdown|stopped|shutting/.test(entry['msg']));
    expect(steps, JSON.stringify(shutdownLines)).toEqual(['stop accepting', 'workers', 'server', 'cdc', 'sync', 'dashboard', 'pipeline', 'clients']);
    // The embedded database closed: PGlite shut down, then its DATA_DIR lock was given back.
    expect(existsSync(join(dataDir, 'tributary.lock'))).toBe(false);
  });

  it('writes its last log lines out in order, none lost, when the reader of its standard output lags', { timeout: 60_000 }, async () => {
    const running = await startMainProcess({ LOG_LEVEL: 'debug', NODE_OPTIONS: `--import=${laggingStdout}` }, { migrated: true });
    // Once its standard output has ended too: every line it wrote has been read.
    const closed = once(running.child, 'close');
    running.child.kill('SIGTERM');
    expect(await running.exited).toEqual({ code: 0, signal: null });
    await closed;

    const shutdown = running.logs.filter((entry) => ['shutting down', 'shutdown step done', 'stopped'].includes(String(entry['msg'])));
    expect(shutdown.map((entry) => entry['step'] ?? entry['msg'])).toEqual(['shutting down', 'stop accepting', 'workers', 'server', 'cdc', 'sync', 'dashboard', 'pipeline', 'clients', 'stopped']);
    expect(running.logs.at(-1)?.['msg']).toBe('stopped');
  });
});

/**
 * A preload for the entry point: from the signal on, each write to its standard output is refused
 * once, as a full pipe refuses it (EAGAIN) when its reader lags, then goes through. A line still
 * being written when the process exits came out after the lines logged after it, or not at all
 * (the CI run where 'clients' was the third step logged).
 */
const laggingStdout = `data:text/javascript,${encodeURIComponent(`
  import fs from 'node:fs';
  let lagging = false;
  let refuse = true;
  process.on('SIGTERM', () => { lagging = true; });
  const refused = (fd) => {
    if (fd !== 1 || !lagging) return false;
    refuse = !refuse;
    return !refuse;
  };
  const eagain = () => Object.assign(new Error('EAGAIN: resource temporarily unavailable, write'), { code: 'EAGAIN', errno: -11, syscall: 'write' });
  const { write, writeSync } = fs;
  fs.write = (fd, ...rest) => (refused(fd) ? setImmediate(rest.at(-1), eagain()) : write(fd, ...rest));
  fs.writeSync = (fd, ...rest) => { if (refused(fd)) throw eagain(); return writeSync(fd, ...rest); };
`)}`;
