/**
 * What the Redis channel transport does with the frames its channel carries, over a real Redis:
 * a frame that is not a channel message (corrupted, another version's, a foreign publisher's) is
 * skipped and logged, never handed on as one; a listener that throws is the server's fault,
 * logged at error, and the channel goes on delivering.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { ChannelMessage } from '../../src/pipeline/channels/channel-hub.ts';
import { createRedisChannelTransport } from '../../src/pipeline/channels/redis-channel-transport.ts';
import { createRedisBus } from '../../src/pipeline/pubsub/redis-bus.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { deferred } from '../helpers/wait-for.ts';

const KEY = 'app:env:-|room';

async function startTransport() {
  const keyPrefix = uniquePrefix();
  const subscriber = new Redis(testRedisUrl());
  const publisher = new Redis(testRedisUrl());
  onTestFinished(() => {
    subscriber.disconnect();
    publisher.disconnect();
  });
  // The transport refuses a join while its subscriber connection is not ready (UNAVAILABLE).
  if (subscriber.status !== 'ready') await new Promise((resolve) => subscriber.once('ready', resolve));
  const logs = captureLogs();
  const logger = createLogger({ level: 'debug', destination: logs });
  const bus = createRedisBus({ subscriber, publisher, logger, keyPrefix });
  const transport = createRedisChannelTransport({ pubsub: bus.pubsub, publisher, keyPrefix, logger });
  /** Publishes a raw frame on the channel of `KEY`, as another process could. */
  const publishRaw = (frame: string) => publisher.publish(`${keyPrefix}{${KEY}}:channel`, frame);
  return { transport, logs, publishRaw };
}

describe('frames on a Redis channel', () => {
  it('skips and logs frames that are not channel messages, delivering only the messages', async () => {
    const { transport, logs, publishRaw } = await startTransport();
    const delivered: ChannelMessage[] = [];
    const last = deferred();
    await transport.subscribe(KEY, (message) => {
      delivered.push(message);
      if (message.event === 'last') last.resolve();
    });

    for (const frame of ['C[1,2,3]', 'C{"hello":"world"}', 'C{"channel":"room","event":7}', 'Cnot json', 'X{"channel":"room","event":"x"}']) await publishRaw(frame);
    await transport.publish(KEY, { channel: 'room', event: 'last', data: { n: 1 } });
    await last.promise;

    expect(delivered).toEqual([{ channel: 'room', event: 'last', data: { n: 1 } }]);
    const ignored = logs.lines.filter((line) => line.msg === 'malformed channel frame ignored');
    expect(ignored).toHaveLength(5);
    expect(ignored.every((line) => line.level === 40)).toBe(true);
  });

  it('logs a listener that throws at error, and goes on delivering the next messages', async () => {
    const { transport, logs } = await startTransport();
    const delivered: string[] = [];
    const second = deferred();
    await transport.subscribe(KEY, (message) => {
      delivered.push(message.event);
      if (message.event === 'first') throw new Error('listener bug: queue push failed');
      second.resolve();
    });

    await transport.publish(KEY, { channel: 'room', event: 'first', data: null });
    await transport.publish(KEY, { channel: 'room', event: 'second', data: null });
    await second.promise;

    expect(delivered).toEqual(['first', 'second']);
    const failed = logs.lines.filter((line) => line.level === 50);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.msg).toBe('channel message not delivered');
    expect(failed[0]?.err?.message).toBe('listener bug: queue push failed');
  });
});
