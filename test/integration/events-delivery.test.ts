import { beforeAll, describe, expect, it } from 'vitest';
import {
  eventOf,
  expectErrorCode,
  expectRefusedSubscription,
  MODES,
  messagesBeforePong,
  publishEvent,
  publishMany,
  publishRaw,
  range,
  seqPayloads,
  seqsOf,
  startModeServer,
  subscribeEvents,
  takeEvents,
  takeUntil,
  waitForSubscribers,
  type DeliveredEvent,
} from '../helpers/events.ts';
import type { TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

/** Published in this order; `name` identifies each in the expectations below. */
const FILTER_EVENTS: readonly { type?: string; payload: Record<string, unknown> }[] = [
  { payload: { name: 'e1', status: 'open', n: 1, nested: { x: 1 } } },
  { type: 'alert', payload: { name: 'e2', status: 'closed', n: 5 } },
  { payload: { name: 'e3', status: 'open', n: 10, flag: null } },
  { payload: { name: 'e4', n: '10' } },
  { payload: { name: 'e5', status: 'pending', n: 7, nested: { x: 2 } } },
  { type: 'end', payload: { name: 'end' } },
];

/** Each filter and the names of the events it must let through, in publish order. */
const FILTER_CASES: readonly { id: string; where: unknown; matches: string[] }[] = [
  { id: 'eq', where: { field: 'payload.status', eq: 'open' }, matches: ['e1', 'e3'] },
  { id: 'eq-deep', where: { field: 'payload.nested', eq: { x: 1 } }, matches: ['e1'] },
  { id: 'ne', where: { field: 'payload.status', ne: 'open' }, matches: ['e2', 'e4', 'e5', 'end'] },
  { id: 'in', where: { field: 'payload.status', in: ['closed', 'pending'] }, matches: ['e2', 'e5'] },
  { id: 'nin', where: { field: 'payload.status', nin: ['open', 'closed'] }, matches: ['e4', 'e5', 'end'] },
  { id: 'gt', where: { field: 'payload.n', gt: 5 }, matches: ['e3', 'e5'] },
  { id: 'gte', where: { field: 'payload.n', gte: 5 }, matches: ['e2', 'e3', 'e5'] },
  { id: 'lt', where: { field: 'payload.n', lt: 5 }, matches: ['e1'] },
  { id: 'lte', where: { field: 'payload.n', lte: 5 }, matches: ['e1', 'e2'] },
  { id: 'gt-string', where: { field: 'payload.n', gt: '1' }, matches: ['e4'] },
  { id: 'range', where: { field: 'payload.n', gt: 1, lte: 7 }, matches: ['e2', 'e5'] },
  { id: 'exists', where: { field: 'payload.flag', exists: true }, matches: ['e3'] },
  { id: 'not-exists', where: { field: 'payload.nested', exists: false }, matches: ['e2', 'e3', 'e4', 'end'] },
  { id: 'type', where: { field: 'type', eq: 'alert' }, matches: ['e2'] },
  { id: 'source', where: { field: 'source', eq: 'SOCKET' }, matches: ['e1', 'e2', 'e3', 'e4', 'e5', 'end'] },
  { id: 'timestamp', where: { field: 'metadata.timestamp', gt: 0 }, matches: ['e1', 'e2', 'e3', 'e4', 'e5', 'end'] },
  {
    id: 'and',
    where: { and: [{ field: 'payload.status', eq: 'open' }, { field: 'payload.n', gt: 1 }] },
    matches: ['e3'],
  },
  {
    id: 'or',
    where: { or: [{ field: 'payload.status', eq: 'closed' }, { field: 'payload.nested.x', eq: 2 }] },
    matches: ['e2', 'e5'],
  },
  { id: 'not', where: { not: { field: 'payload.status', eq: 'open' } }, matches: ['e2', 'e4', 'e5', 'end'] },
  {
    id: 'nested',
    where: {
      and: [
        { or: [{ field: 'payload.status', in: ['open', 'pending'] }, { field: 'type', eq: 'alert' }] },
        { not: { field: 'payload.n', lt: 5 } },
      ],
    },
    matches: ['e2', 'e3', 'e5'],
  },
  { id: 'or-empty', where: { or: [] }, matches: [] },
];

describe.each(MODES)('events delivery (%s)', (mode) => {
  it('delivers a published event with its id, topic, source, type, payload, timestamp and cursor', async () => {
    const server = await startModeServer(mode);
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 's', { topic: 'orders' });
    await waitForSubscribers(server, 1);

    const before = Date.now();
    const published = await publishEvent(server, { topic: 'orders', payload: { n: 1, nested: { ok: true }, list: [1, 'two', null] } });
    const afterPublish = Date.now();
    const [received] = await takeEvents(client, 's', 1);

    expect(received).toEqual(published);
    expect(received).toMatchObject({
      topic: 'orders',
      source: 'SOCKET',
      type: 'message',
      payload: { n: 1, nested: { ok: true }, list: [1, 'two', null] },
    });
    expect(received?.id).toMatch(/^evt_[A-Za-z0-9_-]+$/);
    expect(received?.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    // Stamped by the server (same clock) while the mutation ran.
    const timestamp = Date.parse(received?.metadata.timestamp ?? '');
    expect(timestamp).toBeGreaterThanOrEqual(before);
    expect(timestamp).toBeLessThanOrEqual(afterPublish);

    const typed = await publishEvent(server, { topic: 'orders', type: 'order.created', payload: { n: 2 } });
    expect((await takeEvents(client, 's', 1))[0]).toMatchObject({ id: typed.id, type: 'order.created' });
    expect(typed.id).not.toBe(published.id);
  });

  it('delivers many events in the order they were published', async () => {
    const server = await startModeServer(mode);
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 's', { topic: 'orders' });
    await waitForSubscribers(server, 1);

    const published = await publishMany(server, 'orders', seqPayloads(1, 200));
    const received = await takeEvents(client, 's', 200);

    expect(seqsOf(received)).toEqual(range(1, 200));
    expect(received.map((event) => event.cursor)).toEqual(published.map((event) => event.cursor));
    expect(new Set(received.map((event) => event.id)).size).toBe(200);
  });

  it('delivers to each filter exactly the events its where clause matches', async () => {
    const server = await startModeServer(mode);
    const client = await openAcknowledgedSocket(server.wsUrl);
    for (const { id, where } of FILTER_CASES) subscribeEvents(client, id, { topic: 'filtered', where });
    await waitForSubscribers(server, FILTER_CASES.length);
    // Subscribed last and unfiltered: once it has the last event, so have all filters (same socket).
    subscribeEvents(client, 'all', { topic: 'filtered' });
    await waitForSubscribers(server, FILTER_CASES.length + 1);

    for (const event of FILTER_EVENTS) await publishEvent(server, { topic: 'filtered', ...event });
    const messages = await takeUntil(client, (message) => message.id === 'all' && eventOf(message).payload['name'] === 'end');
    messages.push(...(await messagesBeforePong(client)));

    const namesById = new Map<string, unknown[]>();
    for (const message of messages) namesById.set(message.id ?? '', [...(namesById.get(message.id ?? '') ?? []), eventOf(message).payload['name']]);
    const expected = Object.fromEntries([
      ...FILTER_CASES.map(({ id, matches }) => [id, matches] as const),
      ['all', FILTER_EVENTS.map((event) => event.payload['name'])],
    ]);
    const actual = Object.fromEntries(Object.keys(expected).map((id) => [id, namesById.get(id) ?? []]));
    expect(actual).toEqual(expected);
    expect([...namesById.keys()].filter((id) => !(id in expected))).toEqual([]);
  });

  it('delivers socket events whole whatever the return mode, since only sync events are trimmed', async () => {
    const server = await startModeServer(mode);
    const client = await openAcknowledgedSocket(server.wsUrl);
    const modes = ['FULL', 'DATA', 'DIFF', 'MINIMAL'] as const;
    for (const returnMode of modes) subscribeEvents(client, returnMode, { topic: 'docs', returnMode });
    await waitForSubscribers(server, modes.length);

    const payload = { data: { title: 'a' }, diff: { title: ['', 'a'] }, revision: 3 };
    await publishEvent(server, { topic: 'docs', payload });
    const messages = [];
    while (messages.length < modes.length) messages.push(await client.nextMessage());

    expect(messages.map((message) => message.id).sort()).toEqual([...modes].sort());
    for (const message of messages) expect(eventOf(message).payload).toEqual(payload);
  });

  it('serves two subscribers of the same operation from one cohort, and both receive', async () => {
    const server = await startModeServer(mode);
    const first = await openAcknowledgedSocket(server.wsUrl);
    const second = await openAcknowledgedSocket(server.wsUrl);
    const where = { field: 'payload.n', gte: 1 };
    subscribeEvents(first, 'a', { topic: 'orders', where });
    subscribeEvents(second, 'b', { topic: 'orders', where });
    await waitForSubscribers(server, 2);
    expect(server.stats()).toMatchObject({ streams: 1, cohorts: 1, subscribers: 2 });

    const published = await publishEvent(server, { topic: 'orders', payload: { n: 1 } });
    expect((await takeEvents(first, 'a', 1))[0]).toEqual(published);
    expect((await takeEvents(second, 'b', 1))[0]).toEqual(published);
  });

  it('puts subscribers with different where clauses in different cohorts', async () => {
    const server = await startModeServer(mode);
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 'low', { topic: 'orders', where: { field: 'payload.n', lt: 5 } });
    subscribeEvents(client, 'high', { topic: 'orders', where: { field: 'payload.n', gte: 5 } });
    await waitForSubscribers(server, 2);
    expect(server.stats()).toMatchObject({ streams: 1, cohorts: 2, subscribers: 2 });

    await publishEvent(server, { topic: 'orders', payload: { n: 1 } });
    await publishEvent(server, { topic: 'orders', payload: { n: 9 } });
    const received: DeliveredEvent[] = [];
    const ids: unknown[] = [];
    for (let i = 0; i < 2; i++) {
      const message = await client.nextMessage();
      ids.push(message.id);
      received.push(eventOf(message));
    }
    expect(ids).toEqual(['low', 'high']);
    expect(received.map((event) => event.payload['n'])).toEqual([1, 9]);
  });

  describe('input validation', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startModeServer(mode, { EVENT_MAX_PAYLOAD_BYTES: '100' }, { autoDispose: false });
      return () => server.dispose();
    });

    it.each([
      ['a path into metadata.scope', { field: 'metadata.scope', eq: 'tenant-a' }],
      ['a path under metadata.scope', { field: 'metadata.scope.tenant', eq: 'tenant-a' }],
      ['an unknown root', { field: 'secret', eq: 1 }],
      ['an operator without a field', { eq: 1 }],
      ['a field without an operator', { field: 'type' }],
      ['an empty filter', {}],
      ['a nested bad path', { and: [{ not: { field: 'payload.a b', eq: 1 } }] }],
      ['a list as a comparison bound', { field: 'payload.n', gt: [1] }],
    ])('refuses a subscription whose where has %s with BAD_USER_INPUT, then completes it', async (_case, where) => {
      const client = await openAcknowledgedSocket(server.wsUrl);
      subscribeEvents(client, 'bad', { topic: 'orders', where });
      await expectRefusedSubscription(client, 'bad', 'BAD_USER_INPUT');
      expect(server.stats().subscribers).toBe(0);
    });

    it.each([
      ['a number', 5],
      ['a string', 'text'],
      ['a boolean', true],
      ['a list', [{ n: 1 }]],
    ])('refuses to publish %s as the payload with BAD_USER_INPUT', async (_case, payload) => {
      const { body } = await publishRaw(server, { topic: 'orders', payload });
      expectErrorCode(body, 'BAD_USER_INPUT');
    });

    it('refuses a payload larger than EVENT_MAX_PAYLOAD_BYTES and accepts one of exactly that size', async () => {
      // {"s":"…"} is 8 bytes of JSON around the string.
      const atLimit = { s: 'x'.repeat(92) };
      expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(100);
      await publishEvent(server, { topic: 'orders', payload: atLimit });

      const { body } = await publishRaw(server, { topic: 'orders', payload: { s: 'x'.repeat(93) } });
      expectErrorCode(body, 'BAD_USER_INPUT');
    });

    it.each([
      ['a wildcard', '*'],
      ['a trailing wildcard', 'orders.*'],
      ['a space', 'a b'],
      ['a newline', 'a\nb'],
      ['a redis pattern', 'orders[ab]'],
      ['a hash tag brace', 'a}b'],
      ['201 characters', 'a'.repeat(201)],
      ['an empty name', ''],
    ])('refuses a topic with %s for both publish and events', async (_case, topic) => {
      const { body } = await publishRaw(server, { topic, payload: { n: 1 } });
      expectErrorCode(body, 'BAD_USER_INPUT');

      const client = await openAcknowledgedSocket(server.wsUrl);
      subscribeEvents(client, 'bad', { topic });
      await expectRefusedSubscription(client, 'bad', 'BAD_USER_INPUT');
      expect(server.stats().subscribers).toBe(0);
    });
  });

  it.each([
    ['a colon', 'a:b'],
    ['slashes, dashes and underscores', 'crm/contacts_v2-live'],
    ['200 characters', 'a'.repeat(200)],
  ])('accepts a topic with %s for both publish and events', async (_case, topic) => {
    const server = await startModeServer(mode);
    const client = await openAcknowledgedSocket(server.wsUrl);
    subscribeEvents(client, 's', { topic });
    await waitForSubscribers(server, 1);
    const published = await publishEvent(server, { topic, payload: { n: 1 } });
    expect((await takeEvents(client, 's', 1))[0]).toEqual(published);
    expect(published.topic).toBe(topic);
  });
});
