/**
 * A subsystem's `dispose()` runs every step even when one fails, and never throws (STYLE §9,
 * `start/subsystem.ts`): the failing step is logged, the steps after it still run. Here the
 * analytics' sampler removal throws; the last push of the counts must still reach the store.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { startAnalytics } from '../../src/start/analytics.ts';
import type { Clients } from '../../src/start/clients.ts';
import type { StartContext } from '../../src/start/subsystem.ts';
import { createLogger } from '../../src/logger.ts';
import { streamOf } from '../../src/pipeline/stream.ts';
import { captureLogs } from '../helpers/tributary.ts';

/** Metrics whose samplers cannot be removed: the first step of a dispose fails. */
function metricsWithBrokenSamplerRemoval(): Metrics {
  const metrics = createMetrics();
  return {
    ...metrics,
    sample: (sampler) => {
      metrics.sample(sampler);
      return () => {
        throw new Error('sampler removal broke');
      };
    },
  };
}

describe('subsystem dispose', () => {
  it('analytics: still pushes the last counts to the store when removing its sampler throws, logs the failed step and resolves', async () => {
    const logs = captureLogs();
    const minute = 60_000 * 29_000_000;
    const context: StartContext = {
      config: loadConfig({ NODE_ENV: 'test', DATA_DIR: 'memory://' }),
      // Without Redis: the in-memory minute store; the database is not used.
      clients: { redis: undefined } as unknown as Clients,
      metrics: metricsWithBrokenSamplerRemoval(),
      logger: createLogger({ level: 'error', destination: logs }),
      now: () => minute + 1000,
    };
    const analytics = startAnalytics(context);
    analytics.recorder?.routed(streamOf({ app: 'shop', env: 'prod', tenant: 't1' }, 'orders').key, 'socket');

    await expect(analytics.dispose()).resolves.toBeUndefined();

    expect(await analytics.store.minutes()).toEqual([minute]);
    expect(logs.lines).toEqual([expect.objectContaining({ level: 50, msg: 'shutdown step failed', err: expect.objectContaining({ message: 'sampler removal broke' }) as unknown })]);
  });
});
