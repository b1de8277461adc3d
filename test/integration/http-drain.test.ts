/**
 * The listener at shutdown (src/start/listen.ts): a request under way is answered — a publish it
 * placed must not look failed to its client — and its connection closes after it; connections
 * answering nothing (holding part of a request, as a slow client or a TCP check does) are cut
 * after the grace period.
 */
import { once } from 'node:events';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { listen } from '../../src/start/listen.ts';

interface Answer {
  readonly status: number | undefined;
  readonly connection: string | undefined;
  readonly body: string;
  readonly socket: Socket;
}

function get(url: string, agent: http.Agent): { socket: Promise<Socket>; answer: Promise<Answer> } {
  const request = http.get(url, { agent });
  const socket = once(request, 'socket').then(([opened]) => opened as Socket);
  const answer = new Promise<Answer>((resolve, reject) => {
    request.on('error', reject);
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode, connection: response.headers.connection, body, socket: request.socket! }));
    });
  });
  return { socket, answer };
}

it('answers a request under way at shutdown and closes its connection after it, and cuts the connections answering nothing after the grace', async () => {
  const config = loadConfig({ NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_MS: '1000' });
  const checking = Promise.withResolvers<void>();
  const slow = Promise.withResolvers<void>();
  const listening = await listen(
    { config, metrics: createMetrics(), logger: createLogger({ level: 'silent' }) },
    { readiness: [{ name: 'slow', check: () => (checking.resolve(), slow.promise) }] },
  );
  onTestFinished(() => listening.dispose());
  const idleAgent = new http.Agent({ keepAlive: true });
  const busyAgent = new http.Agent({ keepAlive: true });
  onTestFinished(() => {
    idleAgent.destroy();
    busyAgent.destroy();
  });

  // A keep-alive connection between requests, one holding part of a request (Node counts it as
  // busy: it is not closed as idle), and one whose request (/ready) is under way.
  const health = await get(`${listening.url}/health`, idleAgent).answer;
  expect(health.status).toBe(200);
  const idleClosed = once(health.socket, 'close');
  const partial = connect(listening.port, '127.0.0.1');
  await once(partial, 'connect');
  partial.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const partialClosed = once(partial, 'close');
  const busy = get(`${listening.url}/ready`, busyAgent);
  const busySocket = await busy.socket;
  const busyClosed = once(busySocket, 'close');
  await checking.promise;

  const disposed = listening.dispose();
  // The grace period passes: the idle and the partial connections are cut, the busy one is not.
  await idleClosed;
  await partialClosed;
  expect(busySocket.destroyed).toBe(false);
  slow.resolve();
  const ready = await busy.answer;
  expect(ready.status).toBe(200);
  expect(JSON.parse(ready.body)).toMatchObject({ ready: true });
  expect(ready.connection).toBe('close');
  await busyClosed;
  await disposed;
});
