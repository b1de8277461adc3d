/**
 * A platform database with one webhook endpoint, for the suites that work the delivery store
 * directly (no server): migrated, its endpoint selecting everything, and fresh deliveries to it.
 * Create it in `beforeAll` and dispose it in `afterAll` — `sharedDeliveryFixture()` does both.
 */
import { afterAll, beforeAll } from 'vitest';
import type { Database, Queryable } from '../../src/db/database.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import type { NewDelivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { insertEndpoint } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createTestDatabase } from './services.ts';

export interface DeliveryFixture {
  readonly db: Database;
  /** The database's URL, for a connection of a test's own. */
  readonly url: string;
  readonly endpointId: string;
  /** A new initial delivery to the endpoint in `lane` (an event id of its own). */
  delivery(lane: string): NewDelivery;
  /** Another endpoint like the first; resolves with its id. */
  endpoint(description: string): Promise<string>;
  dispose(): Promise<void>;
}

export async function createDeliveryFixture(): Promise<DeliveryFixture> {
  const logger = createLogger({ level: 'silent' });
  const database = await createTestDatabase({ autoDispose: false, migrated: true });
  const db = createPostgresDatabase({ url: database.url, logger });
  const addEndpoint = async (description: string) =>
    (
      await insertEndpoint(db, {
        app: 'app',
        env: 'env',
        tenant: null,
        url: 'https://receiver.example/hook',
        description,
        events: ['*'],
        rateLimitPerSecond: null,
        maxConcurrency: 10,
        secret: newWebhookSecret(),
      })
    ).id;
  const endpointId = await addEndpoint('');
  let nextEvent = 0;
  return {
    db,
    url: database.url,
    endpointId,
    endpoint: addEndpoint,
    delivery(lane) {
      nextEvent += 1;
      return { endpointId, eventId: `ev-${nextEvent}`, eventType: 'test.event', topic: 'orders', lane, body: '{}', trigger: 'initial', eventTime: new Date() };
    },
    async dispose() {
      await db.close();
      await database.dispose();
    },
  };
}

/** A placed event of the fixture's app and environment (topic `orders`, an entity of its own): what the routing tap is handed. */
export function placedEvent(id: string): RealtimeEvent {
  return {
    id,
    topic: 'orders',
    source: 'system',
    type: 'order.updated',
    payload: { id },
    metadata: { timestamp: Date.now(), scope: { app: 'app', env: 'env', tenant: undefined } },
    cursor: '0-1',
  };
}

/**
 * One fixture for a test file's tests: created before them, disposed after them. Its `fixture` and
 * `db` are read inside the tests (they are set by then).
 */
export function sharedDeliveryFixture(): { readonly fixture: DeliveryFixture; readonly db: Database } {
  let created: DeliveryFixture | undefined;
  beforeAll(async () => {
    created = await createDeliveryFixture();
  });
  afterAll(async () => {
    await created?.dispose();
  });
  const fixture = (): DeliveryFixture => {
    if (!created) throw new Error('the delivery fixture is read before its beforeAll ran');
    return created;
  };
  return {
    get fixture() {
      return fixture();
    },
    get db() {
      return fixture().db;
    },
  };
}

/** Runs `work` in a transaction of `db` left open until `commit` is called (a race, held at a chosen point). */
export async function holdOpen<T>(db: Database, work: (tx: Queryable) => Promise<T>): Promise<{ result: T; commit(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let done!: (result: T) => void;
  const ran = new Promise<T>((resolve) => (done = resolve));
  const transaction = db.transaction(async (tx) => {
    done(await work(tx));
    await released;
  });
  const result = await Promise.race([ran, transaction.then(() => Promise.reject(new Error('the transaction ended before its work')))]);
  return {
    result,
    async commit() {
      release();
      await transaction;
    },
  };
}
