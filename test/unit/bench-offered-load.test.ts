import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPublisher } from '../../bench/lib/publisher.ts';
import { formatRatioLine, notComparable } from '../../bench/lib/report.ts';
import { offeredLoadShortfall } from '../../bench/workloads/step-problems.ts';

/** A server that answers each publish only once the next one would be due three times over: the publisher must fall behind. */
async function slowServer(delayMs: number): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method === 'POST') bodies.push(Buffer.concat(chunks).toString('utf8'));
      setTimeout(() => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"publish":{"id":"evt_x"}}}'), delayMs);
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, bodies };
}

describe('bench offered load', () => {
  it('stamps every event with the time it was due, not the time a publisher held up by a slow server got to send it', async () => {
    const { url, bodies } = await slowServer(30);
    const publisher = createPublisher({ url });
    onTestFinished(() => publisher.close());
    const rate = 100; // one every 10 ms, one in flight, each answered after 30 ms
    const report = await publisher.run({ firstSeq: 1, count: 6, rate, maxInFlight: 1 });

    const stamped = bodies.map((body) => Number(/"sentAt":([0-9.]+)/.exec(body)?.[1]));
    const due = stamped.map((_, k) => Number((report.startedAt + (k * 1000) / rate).toFixed(3)));
    expect(stamped).toEqual(due);
    // It did fall behind: the last event went out after its due time.
    expect(report.lastSentAt).toBeGreaterThan(due.at(-1) ?? Number.POSITIVE_INFINITY);
  });

  it('calls a step not comparable when its publisher lagged, or when it delivered below the offered rate', () => {
    const publish = { sent: 60, startedAt: 0, lastSentAt: 5900, lagMs: 0 };
    const onTime = { rate: 10, events: 60, publish, allowanceMs: 600, problem: undefined };
    expect(offeredLoadShortfall(onTime)).toBeUndefined();
    expect(offeredLoadShortfall({ ...onTime, publish: { ...publish, lastSentAt: 7199, lagMs: 1299 } })).toMatch(/^publisher lagged/);
    expect(offeredLoadShortfall({ ...onTime, publish: { ...publish, sent: 40 } })).toMatch(/^publisher lagged: sent 40 of 60/);
    expect(offeredLoadShortfall({ ...onTime, problem: 'backlog: last message 1402 ms after the last was due' })).toMatch(/^delivered below the offered rate: backlog/);
  });

  it('prints a ratio with a side not at the offered load as ✗ with the reason, not as a number', () => {
    const invalid = notComparable('tributary', undefined, 'yoga-graphql-ws', 'publisher lagged: ended 1299 ms behind schedule');
    const line = formatRatioLine('tributary', 'yoga-graphql-ws', [
      { metric: 'saturation msgs/s', value: 15.46 },
      { metric: 'p50', value: 0.17, invalid },
    ]);
    expect(line).toContain('saturation msgs/s 15.46×');
    expect(line).toContain('p50 ✗');
    expect(line).not.toContain('0.17');
    expect(line).toContain('✗ not comparable: yoga-graphql-ws: publisher lagged: ended 1299 ms behind schedule');
  });
});
