/**
 * The Redis log's side of keeping a joined stream alive (see test/unit/dispatch-keep-alive.test.ts):
 * a stream whose keys are about to expire gets its full lifetime back when the dispatcher joins
 * it, not only at the next periodic keep-alive.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createDispatcher } from '../../src/pipeline/dispatch/dispatcher.ts';
import type { CohortSpec } from '../../src/pipeline/dispatch/subscription-contract.ts';
import { createRedisLog } from '../../src/pipeline/log/redis-log.ts';
import { createMemoryBus } from '../../src/pipeline/pubsub/memory-bus.ts';
import { streamKeys } from '../../src/pipeline/redis-keys.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';

const STREAM = streamOf({ app: 'shop', env: 'prod', tenant: 't1' }, 'orders');
const COHORT: CohortSpec = { key: 'seq', filter: undefined, render: (event) => String(event.payload['seq']) };

describe('dispatcher with the Redis log: joining a stream', () => {
  it('extends the life of a stream that was about to expire', async () => {
    const redis = new Redis(testRedisUrl());
    onTestFinished(async () => void (await redis.quit()));
    const keyPrefix = uniquePrefix();
    const maxAgeMs = 60_000;
    const log = createRedisLog({ redis, retention: { maxEvents: 100, maxAgeMs }, keyPrefix });
    // No periodic keep-alive during the test: only the join can extend the stream.
    const dispatcher = createDispatcher({ log, bus: createMemoryBus(), logger: pino({ level: 'silent' }), keepAliveMs: 3_600_000 });
    onTestFinished(() => dispatcher.close());
    const first = await log.append(STREAM, {
      id: 'evt_1',
      topic: STREAM.topic,
      source: 'socket',
      type: 'message',
      payload: { seq: 1 },
      metadata: { timestamp: Date.now(), scope: STREAM.scope },
    });
    // The stream has aged: a second of its life is left.
    const keys = streamKeys(keyPrefix, STREAM);
    for (const key of [keys.log, keys.epoch, keys.used]) await redis.pexpire(key, 1_000);

    const errors: unknown[] = [];
    await dispatcher.subscribe({ stream: STREAM, cohort: COHORT, after: first.cursor, sink: { next: () => undefined, fail: (error) => errors.push(error), drained: () => undefined } });

    for (const key of [keys.log, keys.epoch, keys.used]) expect(await redis.pttl(key)).toBeGreaterThan(1_000);
    expect(errors).toEqual([]);
  });
});
