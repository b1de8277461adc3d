/**
 * One environment's outbox database that never answers (a frozen host: it takes the TCP connection
 * and says nothing) must not hold the other environments' outboxes: README promises a new source is
 * picked up within 5 s of `setOutboxSource`. Its status is reported on its own, and an unanswered
 * status is reported as an error rather than waited for.
 */
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { getOutboxSource, saveOutboxSource } from '../../src/pipeline/outbox/outbox-store.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { createOutboxPollers } from '../../src/workers/outbox-pollers.ts';
import { createTestDatabase, openTestPool } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

it('picks up and routes a new outbox source, and reports the frozen one as not answering, while another environment’s outbox host never answers', async () => {
  const held = new Set<Socket>();
  const frozenHost = createServer((socket) => void held.add(socket));
  await new Promise<void>((resolve) => frozenHost.listen(0, '127.0.0.1', resolve));
  const frozenUrl = `postgres://user:pw@127.0.0.1:${(frozenHost.address() as AddressInfo).port}/frozen`;

  const platformDb = await createTestDatabase();
  const platform = createPostgresDatabase({ url: platformDb.url, logger });
  onTestFinished(() => platform.close());
  await migrate(platform, { logger });
  const appDb = await createTestDatabase();
  const app = openTestPool(appDb.url);
  await app.query(outboxTableDdl(outboxTable('event_outbox')));
  await saveOutboxSource(platform, { app: 'shop', env: 'prod', databaseUrl: frozenUrl, table: 'event_outbox', identity: 'frozen', requestedMode: 'POLL', readMode: 'POLL', requireTenant: false });

  const routed: unknown[] = [];
  const router = {
    routeMany: (events: readonly unknown[]) => {
      routed.push(...events);
      return Promise.resolve([]);
    },
    route: () => Promise.resolve(undefined),
  } as unknown as EventRouter;
  const pollers = createOutboxPollers({
    db: platform,
    // The frozen host's pool waits for its connections without a limit: only the pollers' own limits end a wait on it.
    connect: (url) => (url === frozenUrl ? new pg.Pool({ connectionString: url, max: 2 }) : createOutboxPool(url, logger)),
    router,
    logger,
    metrics: createMetrics({ processMetrics: false }),
    pollIntervalMs: 50,
    retentionMs: 3_600_000,
    reportIntervalMs: 1_000,
    maxPayloadBytes: 65_536,
  });
  onTestFinished(() => pollers.close());
  // Registered last, so it runs first: the frozen host's connections end, and so do the waits on them.
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of held) socket.destroy();
        frozenHost.close(() => resolve());
      }),
  );

  await pollers.refresh();
  await waitFor(() => held.size > 0, { message: 'the frozen source’s poller connects' });

  await app.query("INSERT INTO event_outbox (topic, event_type, payload, entity) VALUES ('orders', 'order.paid', '{}', 'order:1')");
  await saveOutboxSource(platform, { app: 'crm', env: 'prod', databaseUrl: appDb.url, table: 'event_outbox', identity: 'answering', requestedMode: 'POLL', readMode: 'POLL', requireTenant: false });
  await waitFor(() => routed.length === 1, { timeoutMs: 20_000, message: 'the new source’s row is routed' });

  const frozen = await waitFor(async () => (await getOutboxSource(platform, 'shop', 'prod'))?.report?.lastError, {
    timeoutMs: 20_000,
    message: 'the frozen source’s status is reported as not answering',
  });
  expect(frozen).toMatch(/did not answer/);
  // Nothing ended the frozen host's connections: the new source did not wait for them.
  expect([...held].some((socket) => !socket.destroyed)).toBe(true);
});
