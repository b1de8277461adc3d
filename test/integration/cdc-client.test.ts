import { describe, expect, it, onTestFinished } from 'vitest';
import { subscribeModel, type ModelChangeEvent } from '@tributary/client';
import { CONTACTS_MAPPING, nextChange, saveMappingOk, setUpCdc, subscribeChanges } from '../helpers/cdc.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('server-to-server model subscription (subscribeModel)', () => {
  it('hands every change to the handler in order, and resumes after a dropped connection without losing one', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const received: ModelChangeEvent[] = [];
    const errors: unknown[] = [];
    const subscribers = setup.server.stats().subscribers;
    // Through a proxy the test can cut.
    const proxy = await startTcpProxy(setup.server.port);
    const subscription = subscribeModel({
      url: `ws://127.0.0.1:${proxy.port}/graphql`,
      token: () => token,
      model: 'contacts',
      filter: { status: 'eq.active' },
      onChange: (change) => void received.push(change),
      onError: (error) => void errors.push(error),
      maxRetryDelayMs: 200,
    });
    onTestFinished(async () => {
      subscription.close();
      await subscription.closed;
    });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the client subscribed' });

    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'one'), ('a', 'lead', 'skipped'), ('b', 'active', 'other tenant')`);
    await waitFor(() => received.length === 1, { message: 'the first change' });
    expect(received[0]).toMatchObject({ operation: 'CREATED', model: 'contacts', record: { name: 'one', tenant_id: 'a' } });
    expect(subscription.cursor()).toBe(received[0]!.cursor);

    // The connection is cut and kept down while two changes are published (a direct subscriber
    // sees them); then the client reconnects and resumes after its last change.
    const witness = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts', f: { status: 'eq.active' } });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2, { message: 'the witness subscribed' });
    proxy.refuse(true);
    proxy.dropAll();
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the client is gone' });
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'two')`);
    await setup.source.query(`UPDATE contacts SET name = 'one, renamed' WHERE name = 'one'`);
    expect((await nextChange(witness)).record).toMatchObject({ name: 'two' });
    expect((await nextChange(witness)).record).toMatchObject({ name: 'one, renamed' });
    expect(received).toHaveLength(1);
    proxy.refuse(false);
    await waitFor(() => received.length === 3, { timeoutMs: 15_000, message: 'the changes made while reconnecting' });
    expect(received.slice(1).map((change) => [change.operation, change.record?.['name']])).toEqual([
      ['CREATED', 'two'],
      ['UPDATED', 'one, renamed'],
    ]);
    expect(errors.length).toBeGreaterThan(0);
  });

  it('after RESYNC_REQUIRED, reads the position before onResync: a change committed while onResync refetched is delivered', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const claims = { tenant: 'a', permissions: ['crm.contacts.read'] };
    const token = await signHs256(claims);
    const witness = await subscribeChanges(setup, claims, { m: 'contacts' });
    const received: ModelChangeEvent[] = [];
    let resyncs = 0;
    const subscription = subscribeModel({
      url: setup.server.wsUrl,
      token,
      model: 'contacts',
      // A cursor the server does not know: RESYNC_REQUIRED at once.
      after: 'not-a-cursor',
      onChange: (change) => void received.push(change),
      async onResync() {
        resyncs += 1;
        // The refetch reads its state; a row committed meanwhile is neither in it nor before the position.
        await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'during the refetch')`);
        expect((await nextChange(witness)).record).toMatchObject({ name: 'during the refetch' });
      },
      maxRetryDelayMs: 200,
    });
    onTestFinished(async () => {
      subscription.close();
      await subscription.closed;
    });
    await waitFor(() => received.length === 1, { timeoutMs: 15_000, message: 'the change committed during onResync' });
    expect(resyncs).toBe(1);
    expect(received[0]).toMatchObject({ operation: 'CREATED', record: { name: 'during the refetch' } });
  });

  it('finds a connection that stopped answering by its ping timeout, replaces it, and resumes without losing a change', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const proxy = await startTcpProxy(setup.server.port);
    const received: ModelChangeEvent[] = [];
    const subscribers = setup.server.stats().subscribers;
    const subscription = subscribeModel({
      url: `ws://127.0.0.1:${proxy.port}/graphql`,
      token,
      model: 'contacts',
      onChange: (change) => void received.push(change),
      maxRetryDelayMs: 200,
      pingIntervalMs: 100,
      pongTimeoutMs: 300,
    });
    onTestFinished(async () => {
      subscription.close();
      await subscription.closed;
    });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'subscribed' });
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'before')`);
    await waitFor(() => received.length === 1, { message: 'the first change' });

    // Open on both ends, nothing passes: only the missing pong can tell.
    proxy.blackhole(true);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) VALUES ('a', 'active', 'into the dead connection')`);
    await waitFor(() => received.length === 2, { timeoutMs: 15_000, message: 'the change, on a new connection' });
    expect(received.map((change) => change.record?.['name'])).toEqual(['before', 'into the dead connection']);
  });
});

