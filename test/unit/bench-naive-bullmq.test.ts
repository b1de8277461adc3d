import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createNaiveBullmqWebhooks } from '../../bench/peers/naive-bullmq-webhooks.ts';
import { runPostLoop } from '../../bench/peers/plain-post-loop.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

/** A receiver that answers 204 and keeps the header names of every request, in order of arrival. */
async function receiver(): Promise<{ url: string; headerNames: string[][]; received: (count: number) => Promise<void> }> {
  const headerNames: string[][] = [];
  const waiting: { count: number; resolve: () => void }[] = [];
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      headerNames.push(Object.keys(request.headers).sort());
      response.writeHead(204).end();
      for (const waiter of waiting) if (headerNames.length >= waiter.count) waiter.resolve();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    headerNames,
    received: (count) => (headerNames.length >= count ? Promise.resolve() : new Promise((resolve) => waiting.push({ count, resolve }))),
  };
}

describe('bench webhooks drain baseline', () => {
  it('posts with the same HTTP client as the plain POST loop (undici.request), not global fetch', async () => {
    const loopReceiver = await receiver();
    await runPostLoop({ url: loopReceiver.url, concurrency: 1, firstSeq: 1, count: 1, body: () => '{"a":1}', now: () => 0 });

    const naiveReceiver = await receiver();
    const naive = createNaiveBullmqWebhooks({ redisUrl: testRedisUrl(), prefix: uniquePrefix(), concurrency: 2 });
    onTestFinished(() => naive.close());
    await naive.enqueue([{ url: naiveReceiver.url, body: '{"a":1}' }]);
    naive.start();
    await naiveReceiver.received(1);

    // fetch adds its own (user-agent, accept, accept-language, sec-fetch-mode, accept-encoding).
    expect(naiveReceiver.headerNames[0]).toEqual(loopReceiver.headerNames[0]);
  });
});
