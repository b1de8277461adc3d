/**
 * The endpoint caches' version (endpoint-store.ts `endpointsVersion`, migrations/0023), against a
 * real Postgres: it changes with every change an instance must reload for — whatever the order
 * the changes' transactions started and committed in — and not with an attempt's outcome.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createEndpointCache } from '../../src/pipeline/webhooks/endpoint-cache.ts';
import {
  deleteEndpoint,
  disableEndpoint,
  enableEndpoint,
  endpointsVersion,
  forgetExpiredSecrets,
  insertEndpoint,
  lockAndCountEndpoints,
  recordEndpointOutcome,
  rotateEndpointSecret,
  setBacklogFull,
  updateEndpoint,
  type NewEndpoint,
} from '../../src/pipeline/webhooks/endpoint-store.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { sharedDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { databaseOn } from '../helpers/single-connection.ts';

const silent = createLogger({ level: 'silent' });
const shared = sharedDeliveryFixture();

function endpointInput(description: string): NewEndpoint {
  return { app: 'app', env: 'env', tenant: null, url: 'https://receiver.example/hook', description, events: ['*'], rateLimitPerSecond: null, maxConcurrency: 10, secret: newWebhookSecret() };
}

describe('the endpoint caches’ version', () => {
  it('has every cache load an endpoint whose creation started before a change another admin committed, though one was deleted since', async () => {
    const { db } = shared;
    const doomed = (await insertEndpoint(db, endpointInput('deleted later'))).id;
    const cache = await createEndpointCache({ db, refreshMs: 600_000, logger: silent });
    onTestFinished(() => cache.close());

    // createWebhookEndpoint's transaction (webhook-admin.ts), begun first: its now() — the new
    // row's updated_at — is fixed here.
    const client = new pg.Client({ connectionString: shared.fixture.url });
    await client.connect();
    onTestFinished(() => client.end());
    const creator = databaseOn(client);
    await creator.query('BEGIN');
    // As text: Postgres keeps microseconds, which a Date rounds away (the two can share a millisecond).
    const { rows: began } = await creator.query<{ at: string }>('SELECT now()::text AS at');
    // Another admin's update commits meanwhile (a later updated_at), and an instance reloads after it.
    expect(await updateEndpoint(db, shared.fixture.endpointId, { description: 'changed meanwhile' })).toBeDefined();
    const { rows: later } = await db.query<{ later: boolean }>(
      'SELECT updated_at > $2::timestamptz AS later FROM webhook_endpoints WHERE id = $1',
      [shared.fixture.endpointId, began[0]!.at],
    );
    expect(later[0]!.later).toBe(true);
    await cache.refresh();
    await lockAndCountEndpoints(creator, 'app', 'env', null);
    const created = await insertEndpoint(creator, endpointInput('created'));
    await creator.query('COMMIT');
    // An endpoint deleted before the next reload: as many endpoints as before, none updated later.
    expect(await deleteEndpoint(db, doomed)).toBe(true);

    await cache.changed(created.id);
    expect(cache.byId(created.id)?.description).toBe('created');
    expect(cache.byId(doomed)).toBeUndefined();
  });

  it('changes with each change the caches hold, and not with an attempt’s outcome or a forgotten secret', async () => {
    const { db } = shared;
    const id = (await insertEndpoint(db, endpointInput('versioned'))).id;
    const changes: [string, () => Promise<unknown>][] = [
      ['update', () => updateEndpoint(db, id, { description: 'updated' })],
      ['disable', () => disableEndpoint(db, id, 'test')],
      ['enable', () => enableEndpoint(db, id)],
      ['backlog full', () => setBacklogFull(db, id, true)],
      ['rotation', () => rotateEndpointSecret(db, id, newWebhookSecret(), 0)],
      ['creation', () => insertEndpoint(db, endpointInput('another'))],
      ['deletion', () => deleteEndpoint(db, id)],
    ];
    const seen = new Set([await endpointsVersion(db)]);
    for (const [what, change] of changes) {
      await change();
      const version = await endpointsVersion(db);
      expect(seen.has(version), `${what} changes the version`).toBe(false);
      seen.add(version);
    }

    // Outcomes are recorded per attempt: a reload of every endpoint on every instance each time would be for nothing.
    const kept = (await insertEndpoint(db, endpointInput('attempted'))).id;
    const before = await endpointsVersion(db);
    await recordEndpointOutcome(db, kept, false);
    await recordEndpointOutcome(db, kept, true);
    await forgetExpiredSecrets(db);
    // A change that finds nothing to change (enabled already) changes nothing.
    expect(await enableEndpoint(db, kept)).toBeUndefined();
    expect(await endpointsVersion(db)).toBe(before);
  });
});
