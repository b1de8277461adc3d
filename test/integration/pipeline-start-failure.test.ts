/**
 * A pipeline whose start fails — here at its webhook endpoint cache, whose first read fails —
 * undoes what it had made before the error reaches the caller, while the clients are still open:
 * the live bus takes its listeners off the shared subscriber connection (left there, the
 * connection's end at the clients' close reads to it as an outage, and it warns of one), and the
 * webhook queue's own Redis connection is closed.
 */
import pg from 'pg';
import { expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createClients } from '../../src/start/clients.ts';
import { startPipeline } from '../../src/start/pipeline.ts';
import { createTestDatabase, startPrivateRedis } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

it('a pipeline whose start fails takes its listeners off the subscriber connection and closes the webhook queue’s connection', async () => {
  const database = await createTestDatabase({ migrated: true });
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  try {
    // The endpoint cache reads this first, at start.
    await admin.query('DROP TABLE webhook_endpoints_version CASCADE');
  } finally {
    await admin.end();
  }
  const redis = await startPrivateRedis();
  const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: 'memory://', DATABASE_URL: database.url, REDIS_URL: redis.url, LOG_LEVEL: 'silent' });
  const clients = await createClients(config, logger);
  onTestFinished(() => clients.dispose());
  const { subscriber, command } = clients.redis!;
  const listeners = () => Object.fromEntries(['close', 'ready', 'message', 'pmessage'].map((event) => [event, subscriber.listenerCount(event)]));
  const before = listeners();

  await expect(startPipeline({ config, clients, metrics: createMetrics(), logger, now: Date.now })).rejects.toThrow(/webhook_endpoints_version/);

  expect(listeners()).toEqual(before);
  // Only the clients' two connections are left (the queue's is dropped: Redis sees it go a moment later).
  await waitFor(async () => ((await command.client('LIST')) as string).match(/name=\S+/g)?.sort().join(' ') === 'name=tributary name=tributary-subscriber', {
    message: 'only the clients’ connections are open',
  });
});
