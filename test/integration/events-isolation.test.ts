import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  eventOf,
  expectErrorCode,
  expectRefusedSubscription,
  expectSubscriptionError,
  MODES,
  messagesBeforePong,
  metricValue,
  publishEvent,
  publishMany,
  publishRaw,
  seqPayloads,
  startModeServer,
  subscribeEvents,
  takeEvents,
  waitForSubscribers,
} from '../helpers/events.ts';
import { signHs256, TEST_SECRET, type TokenClaims } from '../helpers/tokens.ts';
import type { TestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const DENIED_METRIC = 'tributary_subscriptions_denied_total';

/** Admin of its own scope: may read and publish every topic there, and nowhere else. */
const admin = (claims: TokenClaims) => signHs256({ ...claims, roles: ['admin'], permissions: [] });

/**
 * Scope pairs that must never see each other's events. Several are forged so that a naive key
 * (claims joined with `:` or `|`) would collide.
 */
const SCOPE_PAIRS: readonly [string, TokenClaims, TokenClaims, string][] = [
  ['two tenants of one app', { tenant: 'tenant-a' }, { tenant: 'tenant-b' }, 'orders'],
  ['two tenants on a topic with a colon', { tenant: 'tenant-a' }, { tenant: 'tenant-b' }, 'a:b'],
  ['two tenants on a 200-character topic', { tenant: 'tenant-a' }, { tenant: 'tenant-b' }, `t${'x'.repeat(199)}`],
  ['a tenant and an env claim forged to spell it', { tenant: 'x' }, { env: 'prod:t=x', tenant: undefined }, 'orders'],
  ['app and env claims that join to the same text', { app: 'shop:prod', env: 'x' }, { app: 'shop', env: 'prod:x' }, 'orders'],
  ['a tenant claim carrying the key separators', { tenant: 't|orders' }, { tenant: 't' }, 'orders'],
  ['a tenant and an application-wide principal', { tenant: 'tenant-a' }, { tenant: undefined }, 'orders'],
  ['one tenant name in two apps', { tenant: 'tenant-a' }, { tenant: 'tenant-a', app: 'other' }, 'orders'],
];

describe.each(MODES)('events isolation (%s)', (mode) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startModeServer(mode, { JWT_SECRET: TEST_SECRET }, { autoDispose: false });
    return () => server.dispose();
  });
  // Sockets of the previous test are closed at its end; their subscriptions go shortly after.
  beforeEach(() => waitForSubscribers(server, 0));

  it.each(SCOPE_PAIRS)('never delivers events across %s', async (_case, claimsA, claimsB, topic) => {
    const [tokenA, tokenB] = await Promise.all([admin(claimsA), admin(claimsB)]);
    const socketA = await openAcknowledgedSocket(server.wsUrl, tokenA);
    const socketB = await openAcknowledgedSocket(server.wsUrl, tokenB);
    subscribeEvents(socketA, 'a', { topic });
    subscribeEvents(socketB, 'b', { topic });
    await waitForSubscribers(server, 2);
    expect(server.stats().streams).toBe(2);

    const fromA = await publishEvent(server, { topic, payload: { from: 'A' } }, tokenA);
    expect((await takeEvents(socketA, 'a', 1))[0]).toEqual(fromA);
    // B's own event is the first thing B receives: A's event, published earlier, never came.
    const fromB = await publishEvent(server, { topic, payload: { from: 'B' } }, tokenB);
    expect((await takeEvents(socketB, 'b', 1))[0]).toEqual(fromB);
    expect(await messagesBeforePong(socketA)).toEqual([]);
    expect(await messagesBeforePong(socketB)).toEqual([]);
  });

  it('refuses wildcard topics instead of matching other topics', async () => {
    const token = await admin({ tenant: 'tenant-b' });
    const socket = await openAcknowledgedSocket(server.wsUrl, token);
    for (const [i, topic] of ['*', 'orders.*', 'orders*', '#', '>', 'orders.>', '?rders'].entries()) {
      subscribeEvents(socket, `w${i}`, { topic });
      await expectRefusedSubscription(socket, `w${i}`, 'BAD_USER_INPUT');
    }
    expect(server.stats().subscribers).toBe(0);
  });

  it('refuses a where clause on metadata.scope and never lets a payload filter reach another tenant', async () => {
    const [tokenA, tokenB] = await Promise.all([admin({ tenant: 'tenant-a' }), admin({ tenant: 'tenant-b' })]);
    const socketB = await openAcknowledgedSocket(server.wsUrl, tokenB);
    const scopeA = { app: 'shop', env: 'prod', tenant: 'tenant-a' };
    subscribeEvents(socketB, 'scope', { topic: 'orders', where: { field: 'metadata.scope', eq: scopeA } });
    await expectRefusedSubscription(socketB, 'scope', 'BAD_USER_INPUT');
    subscribeEvents(socketB, 'tenant', { topic: 'orders', where: { field: 'metadata.scope.tenant', eq: 'tenant-a' } });
    await expectRefusedSubscription(socketB, 'tenant', 'BAD_USER_INPUT');

    subscribeEvents(socketB, 'payload', { topic: 'orders', where: { field: 'payload.owner', eq: 'tenant-a' } });
    await waitForSubscribers(server, 1);
    await publishEvent(server, { topic: 'orders', payload: { owner: 'tenant-a' } }, tokenA);
    const own = await publishEvent(server, { topic: 'orders', payload: { owner: 'tenant-a' } }, tokenB);
    expect((await takeEvents(socketB, 'payload', 1))[0]).toEqual(own);
    expect(await messagesBeforePong(socketB)).toEqual([]);
  });

  it("ends a subscription resuming with another tenant's cursor with RESYNC_REQUIRED, never replaying its events", async () => {
    const [tokenA, tokenB] = await Promise.all([admin({ tenant: 'tenant-a' }), admin({ tenant: 'tenant-b' })]);
    const topic = `cursors-${mode}`;
    const eventsA = await publishMany(server, topic, seqPayloads(1, 3), tokenA);
    const socketB = await openAcknowledgedSocket(server.wsUrl, tokenB);

    // B has no history on the topic yet.
    subscribeEvents(socketB, 'empty', { topic, after: eventsA[0]?.cursor });
    await expectSubscriptionError(socketB, 'empty', 'RESYNC_REQUIRED');

    // B has a history in which A's positions would exist: the epoch still tells them apart.
    await publishMany(server, topic, seqPayloads(1, 5), tokenB);
    subscribeEvents(socketB, 'filled', { topic, after: eventsA[0]?.cursor });
    await expectSubscriptionError(socketB, 'filled', 'RESYNC_REQUIRED');
    expect(await messagesBeforePong(socketB)).toEqual([]);
  });

  it('keeps a subscription without the read permission silent, and counts it as denied', async () => {
    const publisher = await signHs256({ permissions: ['crm.contacts.publish'] });
    const denied = await openAcknowledgedSocket(server.wsUrl, await signHs256({ permissions: ['billing.read', 'crm.contacts.publish'] }));
    const allowed = await openAcknowledgedSocket(server.wsUrl, await signHs256({ permissions: ['crm.contacts.read'] }));
    const deniedBefore = await metricValue(server, DENIED_METRIC);

    subscribeEvents(denied, 'd', { topic: 'crm.contacts.changed' });
    await waitFor(async () => (await metricValue(server, DENIED_METRIC)) === deniedBefore + 1, { message: 'denied subscription counted' });
    subscribeEvents(allowed, 'a', { topic: 'crm.contacts.changed' });
    await waitForSubscribers(server, 1);

    const published = await publishEvent(server, { topic: 'crm.contacts.changed', payload: { id: 1 } }, publisher);
    expect((await takeEvents(allowed, 'a', 1))[0]).toEqual(published);
    // No next, no error, no complete: the denied socket heard nothing before its pong.
    expect(await messagesBeforePong(denied)).toEqual([]);
    expect(server.stats().subscribers).toBe(1);
  });

  it('refuses to publish without the publish permission with FORBIDDEN', async () => {
    const reader = await signHs256({ permissions: ['crm.contacts.read'] });
    expectErrorCode((await publishRaw(server, { topic: 'crm.contacts.changed', payload: { id: 1 } }, reader)).body, 'FORBIDDEN');

    const publisher = await signHs256({ permissions: ['crm.contacts.publish'] });
    await publishEvent(server, { topic: 'crm.contacts.changed', payload: { id: 1 } }, publisher);
    for (const topic of ['crm.contactsx', 'crm.contacts-x', 'crm', 'billing.invoices']) {
      expectErrorCode((await publishRaw(server, { topic, payload: { id: 1 } }, publisher)).body, 'FORBIDDEN');
    }
  });

  it("refuses to publish on a sync documents topic, or with one of Tributary's own event types (webhook endpoints select by type)", async () => {
    const publisher = await admin({});
    for (const topic of ['sync.notes.updated', 'sync.notes.doc.n1', 'system.alerts', 'gateway.connected']) {
      const { body } = await publishRaw(server, { topic, type: 'note.changed', payload: { id: 1 } }, publisher);
      expectErrorCode(body, 'FORBIDDEN');
      expect(JSON.stringify(body)).toContain('"field":"topic"');
    }
    for (const type of ['alert.fired', 'endpoint.disabled', 'gateway.connected', 'dashboard.updated', 'analytics.minute', 'sync.updated']) {
      const { body } = await publishRaw(server, { topic: 'orders', type, payload: { id: 1 } }, publisher);
      expectErrorCode(body, 'FORBIDDEN');
      expect(JSON.stringify(body)).toContain('"field":"type"');
    }
    // Names that merely start alike are the application's.
    for (const type of ['alerts.raised', 'endpoints.added', 'synced', 'order.sync']) {
      expect((await publishEvent(server, { topic: 'orders', type, payload: { id: 1 } }, publisher)).type).toBe(type);
    }
  });

  it('lets crm.contacts.read read crm.contacts and the topics below it, and nothing that merely starts alike', async () => {
    const publisher = await admin({});
    const reader = await openAcknowledgedSocket(server.wsUrl, await signHs256({ permissions: ['crm.contacts.read'] }));
    const granted = ['crm.contacts.changed', 'crm.contacts', 'crm.contacts.deleted.soft'];
    const refused = ['crm.contactsx', 'crm.contacts-x', 'crm', 'crm.other'];
    const deniedBefore = await metricValue(server, DENIED_METRIC);
    for (const topic of [...granted, ...refused]) subscribeEvents(reader, topic, { topic });
    await waitForSubscribers(server, granted.length);
    await waitFor(async () => (await metricValue(server, DENIED_METRIC)) === deniedBefore + refused.length, {
      message: 'denied subscriptions counted',
    });

    for (const topic of [...refused, ...granted]) await publishEvent(server, { topic, payload: { topic } }, publisher);
    const received = [];
    for (let i = 0; i < granted.length; i++) received.push(await reader.nextMessage());
    expect(received.map((message) => [message.id, eventOf(message).topic])).toEqual(granted.map((topic) => [topic, topic]));
    expect(await messagesBeforePong(reader)).toEqual([]);
  });
});
