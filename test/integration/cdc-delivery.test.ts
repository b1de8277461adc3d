import { describe, expect, it, onTestFinished } from 'vitest';
import {
  CONTACTS_MAPPING,
  changeOf,
  deniedChanges,
  errorOf,
  expectRefused,
  gql,
  insertContact,
  metricSample,
  nextChange,
  saveMapping,
  saveMappingOk,
  sendChanges,
  setUpCdc,
  socketFor,
  subscribeChanges,
  takeChanges,
  takeMessages,
  type CdcSetup,
} from '../helpers/cdc.ts';
import {
  eventOf,
  expectSubscriptionError,
  messagesBeforePong,
  MODES,
  modeEnv,
  subscribeEvents,
  takeUntil,
  waitForSubscribers,
  type DeliveredEvent,
} from '../helpers/events.ts';
import { uniqueName } from '../helpers/services.ts';
import { signHs256, type TokenClaims } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import type { RawSocket, ReceivedMessage } from '../helpers/ws-client.ts';

/*
 * Database CDC delivery against a real Postgres (logical WAL) and real sockets: who receives a
 * row change (tenants, permissions, filters), on which topics, resumption, and what the WAL
 * leaves out (TOAST, rollbacks, DDL). Crashes, restarts and failover are in cdc-resilience.
 *
 * "Nothing arrived" is always proven the same way: a positive control received a later (or the
 * same) change first, then `ping` on the socket under test is answered by `pong` with nothing
 * before it — the server writes a socket's frames in order.
 */

const READ_CONTACTS: TokenClaims = { tenant: 'a', permissions: ['crm.contacts.read'] };
const UNROUTABLE_METRIC = 'tributary_cdc_unroutable_rows_total';

describe.each(MODES)('CDC tenant isolation (%s pipeline)', (mode) => {
  it("never delivers tenant a's rows to a token of tenant b, under any filter, nor to another tenant's or a tenantless token", async () => {
    const setup = await setUpCdc({ env: modeEnv(mode) });
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const control = await subscribeChanges(setup, READ_CONTACTS, { m: 'contacts' });

    const socketB = await socketFor(setup, { tenant: 'b', permissions: ['crm.read'] });
    const crafted: Record<string, unknown> = {
      tenantEq: { tenant_id: 'eq.a' },
      tenantIn: { tenant_id: 'in.(a,b)' },
      tenantNeq: { tenant_id: 'neq.b' },
      tenantGte: { tenant_id: 'gte.' },
      tenantList: { tenant_id: ['eq.a', 'is.notnull'] },
      quoted: { tenant_id: 'in.("a", " a ", "a\\"")' },
      scopeKey: { tenant_id: 'eq.shop:prod:t=a' },
      cyrillic: { tenant_id: 'eq.\u0430' },
      nameOfA: { name: 'eq.Ann' },
    };
    // Columns the table does not have are refused (the caller may read the model), whatever the other clauses.
    const unknownColumns: Record<string, unknown> = {
      noSuchColumn: { no_such_column: 'is.null' },
      proto: JSON.parse('{ "__proto__": "is.null", "tenant_id": "eq.a" }') as unknown,
    };
    for (const [id, f] of Object.entries(unknownColumns)) {
      sendChanges(socketB, id, { m: 'contacts', f });
      await expectRefused(socketB, id, { code: 'BAD_USER_INPUT', field: 'filter' });
    }
    for (const [id, f] of Object.entries(crafted)) sendChanges(socketB, id, { m: 'contacts', f });
    sendChanges(socketB, 'own', { m: 'contacts' });
    subscribeEvents(socketB, 'modelTopic', { topic: 'crm.contacts' });
    subscribeEvents(socketB, 'mappingTopic', { topic: 'crm.contact-events', where: { field: 'payload.tenant_id', eq: 'a' } });
    // Tenant ids are compared exactly: "A" is another tenant.
    const upperA = await subscribeChanges(setup, { tenant: 'A', permissions: ['crm.read'] }, { m: 'contacts' });
    const tenantless = await socketFor(setup, { tenant: undefined, permissions: ['crm.read'] });
    sendChanges(tenantless, 'changes', { m: 'contacts' });
    subscribeEvents(tenantless, 'events', { topic: 'crm.contact-events' });
    // control, the crafted ones, own + two events, upperA, tenantless' two: every one was accepted.
    await waitForSubscribers(setup.server, 1 + Object.keys(crafted).length + 3 + 1 + 2);

    await insertContact(setup, 'a', 'Ann');
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Ann'`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Ann'`);
    expect((await takeChanges(control, 'c', 3)).map((change) => change.operation)).toEqual(['CREATED', 'UPDATED', 'DELETED']);
    // Committed after a's changes: once b has its own row, a's would have arrived before it.
    await insertContact(setup, 'b', 'Bob');

    const expected = ['own', 'tenantIn', 'tenantGte', 'modelTopic'].sort();
    const received = await takeMessages(socketB, expected.length);
    expect(received.map((message) => message.id).sort()).toEqual(expected);
    for (const message of received) {
      const record = message.id === 'modelTopic' ? eventOf(message).payload['record'] : changeOf(message).record;
      expect(record).toMatchObject({ tenant_id: 'b', name: 'Bob' });
    }
    for (const socket of [control, socketB, upperA, tenantless]) expect(await messagesBeforePong(socket)).toEqual([]);
  });

  it('never publishes a row whose tenant column is null or empty, not even to a tenantless token', async () => {
    const setup = await setUpCdc({ env: modeEnv(mode) });
    await setup.source.query('CREATE TABLE leads (id serial PRIMARY KEY, tenant_id text, name text)');
    await setup.source.query('ALTER TABLE leads REPLICA IDENTITY FULL');
    const leads = { name: 'leads', table: 'leads', events: ['insert'], topic: 'crm.lead-events', module: 'crm', model: 'leads', tenantColumn: 'tenant_id' };
    await saveMappingOk(setup, leads);
    const control = await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.leads.read'] }, { m: 'leads' });
    const tenantless = await socketFor(setup, { tenant: undefined, permissions: ['crm.read'] });
    sendChanges(tenantless, 'changes', { m: 'leads' });
    subscribeEvents(tenantless, 'events', { topic: 'crm.lead-events' });
    await waitForSubscribers(setup.server, 3);
    const unroutableBefore = await metricSample(setup.server, UNROUTABLE_METRIC);

    await setup.source.query(`INSERT INTO leads (tenant_id, name) VALUES (NULL, 'nobody'), ('', 'empty')`);
    await setup.source.query(`INSERT INTO leads (tenant_id, name) VALUES ('a', 'Ann')`);
    expect(await nextChange(control, 'c')).toMatchObject({ record: { tenant_id: 'a', name: 'Ann' } });
    expect(await messagesBeforePong(tenantless)).toEqual([]);
    expect(await messagesBeforePong(control)).toEqual([]);
    expect(await metricSample(setup.server, UNROUTABLE_METRIC)).toBe(unroutableBefore + 2);
  });
});

describe('CDC model names', () => {
  it("refuses model names that are not plain names, and keeps another module's model silent even for its own tenant's rows", async () => {
    const setup = await setUpCdc();
    await setup.source.query('CREATE TABLE invoices (id serial PRIMARY KEY, tenant_id text NOT NULL, total int)');
    await setup.source.query('ALTER TABLE invoices REPLICA IDENTITY FULL');
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await saveMappingOk(setup, {
      name: 'invoices',
      table: 'invoices',
      events: ['insert'],
      topic: 'billing.invoice-events',
      module: 'billing',
      model: 'invoices',
      tenantColumn: 'tenant_id',
    });
    const socketB = await socketFor(setup, { tenant: 'b', permissions: ['crm.read'] });

    const malformed = ['crm.contacts', 'crm.*', '*', 'contacts*', '#', '>', 'contacts.>', '../contacts', 'cöntacts', 'контакты',
      'contacts\u200b', '', ' contacts', 'contacts ', '__proto__', 'a'.repeat(64), "contacts'--"];
    for (const [i, model] of malformed.entries()) {
      sendChanges(socketB, `bad${i}`, { m: model });
      await expectRefused(socketB, `bad${i}`, { code: 'BAD_USER_INPUT', field: 'model' });
    }

    const deniedBefore = await deniedChanges(setup.server);
    const silent = ['invoices', 'Contacts', 'CONTACTS', 'contact', 'contacts-', 'constructor', 'toString', 'hasOwnProperty'];
    for (const model of silent) sendChanges(socketB, model, { m: model });
    sendChanges(socketB, 'own', { m: 'contacts' });
    await waitFor(async () => (await deniedChanges(setup.server)) === deniedBefore + silent.length, { message: 'every crafted model is denied' });
    const controlA = await subscribeChanges(setup, { tenant: 'a', permissions: ['billing.invoices.read'] }, { m: 'invoices' });
    await waitForSubscribers(setup.server, 2);

    await setup.source.query(`INSERT INTO invoices (tenant_id, total) VALUES ('a', 10), ('b', 20)`);
    expect(await nextChange(controlA, 'c')).toMatchObject({ model: 'invoices', record: { tenant_id: 'a', total: 10 } });
    await insertContact(setup, 'b', 'Bob');
    expect(await nextChange(socketB, 'own')).toMatchObject({ model: 'contacts', record: { tenant_id: 'b', name: 'Bob' } });
    // b's own invoice did not reach b either: crm.read does not cover billing.invoices.
    expect(await messagesBeforePong(socketB)).toEqual([]);
    expect(await messagesBeforePong(controlA)).toEqual([]);
  });
});

describe('CDC permissions', () => {
  it('keeps changes silent without {module}.{model}.read or for an undefined model, counts each refusal, and lets crm.read through', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const deniedBefore = await deniedChanges(setup.server);
    const refused: [string, string[]][] = [
      ['contacts', []],
      ['contacts', ['crm.contacts.publish', 'crm.contacts.write']],
      ['contacts', ['billing.contacts.read', 'contacts.read']],
      ['contacts', ['crm.contacts.created.read', 'crm.contactsx.read', 'crm.contact.read', 'crm.contacts-archive.read']],
      ['contacts', ['crm.*.read', '*.read', '*', '.read', 'crm.contacts.read ']],
      // A model no mapping defines, even with the broadest module permission.
      ['leads', ['crm.read']],
    ];
    const deniedSockets: RawSocket[] = [];
    for (const [model, permissions] of refused) deniedSockets.push(await subscribeChanges(setup, { tenant: 'a', permissions }, { m: model }));
    await waitFor(async () => (await deniedChanges(setup.server)) === deniedBefore + refused.length, { message: 'each refusal is counted' });
    // A refused subscription never reaches the dispatcher.
    expect(setup.server.stats().subscribers).toBe(0);

    const allowed = [
      await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.read'] }, { m: 'contacts' }),
      await subscribeChanges(setup, { tenant: 'a', permissions: ['crm.contacts.read'] }, { m: 'contacts' }),
      await subscribeChanges(setup, { tenant: 'a', roles: ['admin'], permissions: [] }, { m: 'contacts' }),
    ];
    await waitForSubscribers(setup.server, allowed.length);

    await insertContact(setup, 'a', 'Ann');
    for (const socket of allowed) expect(await nextChange(socket, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'Ann' } });
    // No next and no error: indistinguishable from a model without changes.
    for (const socket of deniedSockets) expect(await messagesBeforePong(socket)).toEqual([]);
    expect(await deniedChanges(setup.server)).toBe(deniedBefore + refused.length);
  });
});

describe('CDC filters', () => {
  async function setUpDeals(): Promise<CdcSetup> {
    const setup = await setUpCdc();
    await setup.source.query(
      'CREATE TABLE deals (id serial PRIMARY KEY, tenant_id text NOT NULL, label text, stage text, amount numeric, score int, big int8)',
    );
    await setup.source.query('ALTER TABLE deals REPLICA IDENTITY FULL');
    await saveMappingOk(setup, {
      name: 'deals',
      table: 'deals',
      events: ['insert', 'update', 'delete'],
      topic: 'sales.deal-events',
      module: 'sales',
      model: 'deals',
      tenantColumn: 'tenant_id',
    });
    return setup;
  }

  it('delivers exactly the records each filter selects: eq, neq, gt, gte, lt, lte, in, is.null, combined with AND', async () => {
    const setup = await setUpDeals();
    // Which labels each filter selects from the rows below (score int4, amount numeric, big int8).
    const cases: Record<string, { f: unknown; labels: string[] }> = {
      eq: { f: { stage: 'eq.won' }, labels: ['r1'] },
      neq: { f: { stage: 'neq.won' }, labels: ['r2', 'r4', 'end'] }, // r3's NULL is neither equal nor unequal
      gt: { f: { score: 'gt.5' }, labels: ['r2', 'r4'] },
      gte: { f: { score: 'gte.5' }, labels: ['r1', 'r2', 'r4'] },
      lt: { f: { score: 'lt.5' }, labels: ['r3', 'end'] },
      lte: { f: { score: 'lte.-1' }, labels: ['r3'] },
      numericGt: { f: { amount: 'gt.9' }, labels: ['r1', 'r3'] }, // "10.50" and "100" as numbers, not text
      numericEq: { f: { amount: 'eq.10.5' }, labels: ['r1'] },
      bigintGt: { f: { big: 'gt.9007199254740992' }, labels: ['r1'] }, // beyond double precision
      in: { f: { stage: 'in.(won,lost)' }, labels: ['r1', 'r2'] },
      inQuoted: { f: { stage: 'in.("won", "in progress")' }, labels: ['r1', 'r4'] },
      isNull: { f: { stage: 'is.null' }, labels: ['r3'] },
      isNotNull: { f: { stage: 'is.notnull' }, labels: ['r1', 'r2', 'r4', 'end'] },
      and: { f: { stage: 'in.(won,lost,in progress)', score: 'gte.7' }, labels: ['r2', 'r4'] },
      range: { f: { score: ['gt.0', 'lt.10'] }, labels: ['r1', 'r4'] },
      empty: { f: {}, labels: ['r1', 'r2', 'r3', 'r4', 'end'] },
    };
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['sales.deals.read'] });
    for (const [id, { f }] of Object.entries(cases)) sendChanges(socket, id, { m: 'deals', f });
    sendChanges(socket, 'all', { m: 'deals' });
    await waitForSubscribers(setup.server, Object.keys(cases).length + 1);

    await setup.source.query(
      `INSERT INTO deals (tenant_id, label, stage, amount, score, big) VALUES
         ('a', 'r1', 'won', 10.50, 5, 9007199254740993),
         ('a', 'r2', 'lost', 9, 10, 9007199254740992),
         ('a', 'r3', NULL, 100, -1, 1),
         ('b', 'other', 'won', 10.50, 5, 9007199254740993),
         ('a', 'r4', 'in progress', 0.5, 7, NULL)`,
    );
    await setup.source.query(`INSERT INTO deals (tenant_id, label, stage, amount, score) VALUES ('a', 'end', 'end', 0, 0)`);

    const total = Object.values(cases).reduce((sum, { labels }) => sum + labels.length, 0) + 5;
    const byId = new Map<string, string[]>();
    for (const message of await takeMessages(socket, total)) {
      const id = message.id ?? '';
      byId.set(id, [...(byId.get(id) ?? []), String(changeOf(message).record?.['label'])]);
    }
    expect(byId.get('all')).toEqual(['r1', 'r2', 'r3', 'r4', 'end']);
    for (const [id, { labels }] of Object.entries(cases)) expect(byId.get(id) ?? [], id).toEqual(labels);
    expect(await messagesBeforePong(socket)).toEqual([]);
  });

  it("refuses a bad filter with BAD_USER_INPUT naming the field 'filter'", async () => {
    const setup = await setUpDeals();
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['sales.deals.read'] });
    const tooMany = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`c${i}`, 'eq.1']));
    const bad: unknown[] = [
      'stage=eq.won',
      ['eq.won'],
      42,
      { stage: 'like.%won%' },
      { stage: 'eq' },
      { stage: 'won' },
      { stage: 5 },
      { stage: null },
      { stage: [] },
      { stage: { eq: 'won' } },
      { stage: 'is.nil' },
      { stage: 'in.()' },
      { stage: 'in.(won' },
      { stage: 'in.(won,,lost)' },
      { stage: 'in.(won,"lost)' },
      { stage: `eq.${'x'.repeat(600)}` },
      { '1stage': 'eq.won' },
      { 'stage.name': 'eq.won' },
      { '': 'eq.won' },
      { nope: 'is.null' },
      { stage: 'eq.won', Stage: 'eq.won' },
      tooMany,
    ];
    for (const [i, f] of bad.entries()) {
      sendChanges(socket, `bad${i}`, { m: 'deals', f });
      await expectRefused(socket, `bad${i}`, { code: 'BAD_USER_INPUT', field: 'filter' });
    }
    expect(setup.server.stats().subscribers).toBe(0);
  });
});

describe('CDC mapping topics', () => {
  it('publishes the mapping payload on the mapping topic, under the same event id as the model change', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, {
      ...CONTACTS_MAPPING,
      payload: { id: '$row.id', status: '$row.status', before: '$old.status', kind: 'contact', price: '$$5' },
    });
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['crm.read'] });
    subscribeEvents(socket, 'topic', { topic: 'crm.contact-events' });
    subscribeEvents(socket, 'model', { topic: 'crm.contacts' });
    sendChanges(socket, 'changes', { m: 'contacts' });
    await waitForSubscribers(setup.server, 3);

    await insertContact(setup, 'a', 'Ann', 'lead');
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Ann'`);

    const byId = new Map<string, ReceivedMessage[]>();
    for (const message of await takeMessages(socket, 6)) byId.set(message.id ?? '', [...(byId.get(message.id ?? '') ?? []), message]);
    const topic = (byId.get('topic') ?? []).map(eventOf);
    const model = (byId.get('model') ?? []).map(eventOf);
    const changes = (byId.get('changes') ?? []).map(changeOf);
    const id = Number(changes[0]?.id);
    expect(topic.map((event) => event.payload)).toEqual([
      { id, status: 'lead', before: null, kind: 'contact', price: '$5' },
      { id, status: 'active', before: 'lead', kind: 'contact', price: '$5' },
    ]);
    expect(topic.map((event) => [event.source, event.type])).toEqual([
      ['DATABASE', 'contacts.created'],
      ['DATABASE', 'contacts.updated'],
    ]);
    expect(model.map((event) => event.payload)).toMatchObject([
      { operation: 'CREATED', model: 'contacts', id: String(id), record: { name: 'Ann', status: 'lead' } },
      { operation: 'UPDATED', model: 'contacts', id: String(id), record: { name: 'Ann', status: 'active' } },
    ]);
    // One change, one id, on both topics (de-duplication works across them); two changes, two ids.
    expect(topic.map((event) => event.id)).toEqual(model.map((event) => event.id));
    expect(new Set(topic.map((event) => event.id)).size).toBe(2);
    expect(changes.map((change) => change.cursor)).toEqual(model.map((event) => event.cursor));
    expect(await messagesBeforePong(socket)).toEqual([]);
  });

  it('routes a templated topic per row value, encoding values so that they stay one segment, and skips a row it cannot route', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, name: 'by-status', topic: 'crm.contacts.{$row.status}' });
    const topics = { lead: 'crm.contacts.lead', active: 'crm.contacts.active', spaced: 'crm.contacts.in:20progress', dotted: 'crm.contacts.a:2Eb' };
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['crm.contacts.read'] });
    for (const [id, topic] of Object.entries(topics)) subscribeEvents(socket, id, { topic });
    await waitForSubscribers(setup.server, 4);
    const unroutableBefore = await metricSample(setup.server, UNROUTABLE_METRIC);

    // 'active.x' must not become a level below 'active'; NULL cannot name a topic.
    for (const [name, status] of [['Lee', 'lead'], ['Axel', 'active.x'], ['Nil', null], ['Ina', 'in progress'], ['Dot', 'a.b'], ['Ava', 'active']] as const) {
      await insertContact(setup, 'a', name, status);
    }
    const byId = new Map<string, DeliveredEvent>();
    for (const message of await takeMessages(socket, 4)) byId.set(message.id ?? '', eventOf(message));
    expect(Object.fromEntries([...byId].map(([id, event]) => [id, [event.topic, event.payload['name']]]))).toEqual({
      lead: [topics.lead, 'Lee'],
      active: [topics.active, 'Ava'],
      spaced: [topics.spaced, 'Ina'],
      dotted: [topics.dotted, 'Dot'],
    });
    expect(await messagesBeforePong(socket)).toEqual([]);
    expect(await metricSample(setup.server, UNROUTABLE_METRIC)).toBe(unroutableBefore + 1);
  });

  it('emits nothing for an update its when condition rejects, on the mapping topic and the model', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, events: ['insert', 'update'], when: { changed: 'status' } });
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['crm.read'] });
    subscribeEvents(socket, 'topic', { topic: 'crm.contact-events' });
    sendChanges(socket, 'changes', { m: 'contacts' });
    await waitForSubscribers(setup.server, 2);

    await insertContact(setup, 'a', 'Ann', 'lead');
    await setup.source.query(`UPDATE contacts SET name = 'Anna' WHERE name = 'Ann'`);
    await setup.source.query(`UPDATE contacts SET status = 'lead' WHERE name = 'Anna'`);
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Anna'`);

    const received = await takeMessages(socket, 4);
    const topic = received.filter((message) => message.id === 'topic').map((message) => eventOf(message).payload);
    const changes = received.filter((message) => message.id === 'changes').map(changeOf);
    expect(topic).toMatchObject([{ name: 'Ann', status: 'lead' }, { name: 'Anna', status: 'active' }]);
    expect(changes.map((change) => [change.operation, change.record?.['status']])).toEqual([
      ['CREATED', 'lead'],
      ['UPDATED', 'active'],
    ]);
    expect(await messagesBeforePong(socket)).toEqual([]);
  });
});

describe('CDC resume', () => {
  it('resumes changes after a cursor with exactly the changes that followed it, including those made while disconnected', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const watcher = await subscribeChanges(setup, READ_CONTACTS, { m: 'contacts' });
    const first = await subscribeChanges(setup, READ_CONTACTS, { m: 'contacts' });
    await waitForSubscribers(setup.server, 2);

    await insertContact(setup, 'a', 'Ann');
    await insertContact(setup, 'a', 'Bob');
    const [ann] = await takeChanges(first, 'c', 2);
    first.socket.close();
    await first.closed();

    // While disconnected: changes of a (and one of b, which must not appear).
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'Ann'`);
    await insertContact(setup, 'b', 'Bea');
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Bob'`);
    // The watcher has them all, so they are in the log before the resume.
    const seen = await takeChanges(watcher, 'c', 4);

    const resumed = await subscribeChanges(setup, READ_CONTACTS, { m: 'contacts', a: ann?.cursor });
    const replayed = await takeChanges(resumed, 'c', 3);
    expect(replayed).toEqual(seen.slice(1));
    expect(replayed.map((change) => [change.operation, change.record?.['name']])).toEqual([
      ['CREATED', 'Bob'],
      ['UPDATED', 'Ann'],
      ['DELETED', 'Bob'],
    ]);
    // Then live, without a gap or a duplicate at the seam.
    await insertContact(setup, 'a', 'Cy');
    expect(await nextChange(resumed, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'Cy' } });
    expect(await messagesBeforePong(resumed)).toEqual([]);
  });

  it("ends changes resuming after an unknown, expired, other topic's or other tenant's cursor with RESYNC_REQUIRED", async () => {
    const setup = await setUpCdc({ env: { EVENT_LOG_MAX_EVENTS: '10' } });
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const socketA = await socketFor(setup, { tenant: 'a', permissions: ['crm.read'] });
    sendChanges(socketA, 'all', { m: 'contacts' });
    subscribeEvents(socketA, 'topic', { topic: 'crm.contact-events' });
    await waitForSubscribers(setup.server, 2);
    await setup.source.query(`INSERT INTO contacts (tenant_id, name) SELECT 'a', 'n' || i FROM generate_series(1, 15) AS i`);
    const received = await takeMessages(socketA, 30);
    const changes = received.filter((message) => message.id === 'all').map(changeOf);
    const topicEvent = eventOf(received.find((message) => message.id === 'topic') ?? { type: 'none' });
    expect(changes.map((change) => change.record?.['name'])).toEqual(Array.from({ length: 15 }, (_, i) => `n${i + 1}`));

    const cases: [string, string | undefined][] = [
      ['garbage', 'garbage'],
      ['empty', ''],
      ['expired', changes[0]?.cursor],
      ['otherTopic', topicEvent.cursor],
    ];
    for (const [id, a] of cases) {
      sendChanges(socketA, id, { m: 'contacts', a });
      await expectSubscriptionError(socketA, id, 'RESYNC_REQUIRED');
    }
    // Still retained: the last ten.
    sendChanges(socketA, 'recent', { m: 'contacts', a: changes[9]?.cursor });
    expect((await takeChanges(socketA, 'recent', 5)).map((change) => change.record?.['name'])).toEqual(['n11', 'n12', 'n13', 'n14', 'n15']);

    const socketB = await socketFor(setup, { tenant: 'b', permissions: ['crm.read'] });
    sendChanges(socketB, 'foreign', { m: 'contacts', a: changes[12]?.cursor });
    await expectSubscriptionError(socketB, 'foreign', 'RESYNC_REQUIRED');
    expect(await messagesBeforePong(socketB)).toEqual([]);
  });
});

describe('CDC and TOAST', () => {
  it.each([
    ['FULL', true],
    ['DEFAULT', false],
  ] as const)('never turns an unchanged TOASTed column into null (REPLICA IDENTITY %s)', async (identity, full) => {
    const setup = await setUpCdc();
    const table = uniqueName('notes');
    await setup.source.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, tenant_id text NOT NULL, title text, body text)`);
    // Stored out of line and uncompressed, so the value is TOASTed whatever its content.
    await setup.source.query(`ALTER TABLE ${table} ALTER COLUMN body SET STORAGE EXTERNAL`);
    await setup.source.query(`ALTER TABLE ${table} REPLICA IDENTITY ${identity}`);
    await saveMappingOk(setup, {
      name: 'notes',
      table,
      events: full ? ['insert', 'update', 'delete'] : ['insert', 'update'],
      topic: 'docs.note-events',
      payload: { title: '$row.title', body: '$row.body' },
      module: 'docs',
      model: 'notes',
      tenantColumn: 'tenant_id',
    });
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['docs.read'] });
    sendChanges(socket, 'changes', { m: 'notes' });
    sendChanges(socket, 'hasBody', { m: 'notes', f: { body: 'is.notnull' } });
    subscribeEvents(socket, 'topic', { topic: 'docs.note-events' });
    await waitForSubscribers(setup.server, 3);

    await setup.source.query(
      `INSERT INTO ${table} (tenant_id, title, body) SELECT 'a', 'draft', string_agg(md5(i::text || random()::text), '') FROM generate_series(1, 1000) AS i`,
    );
    const { rows } = await setup.source.query<{ body: string }>(`SELECT body FROM ${table}`);
    const body = rows[0]?.body ?? '';
    expect(body).toHaveLength(32_000);
    await setup.source.query(`UPDATE ${table} SET title = 'final'`);

    // Up to the unfiltered subscription's update, then whatever else was written before a pong.
    const received = await takeUntil(socket, (message) => message.id === 'changes' && changeOf(message).operation === 'UPDATED');
    received.push(...(await messagesBeforePong(socket)));
    const changes = received.filter((message) => message.id === 'changes').map(changeOf);
    const payloads = received.filter((message) => message.id === 'topic').map((message) => eventOf(message).payload);
    expect(changes.map((change) => change.operation)).toEqual(['CREATED', 'UPDATED']);
    expect(changes[0]?.record?.['body']).toBe(body);
    expect(payloads[0]).toEqual({ title: 'draft', body });
    if (full) {
      // The old row carries the value: the record is whole.
      expect(changes[1]?.record).toMatchObject({ title: 'final', body });
      expect(payloads[1]).toEqual({ title: 'final', body });
    } else {
      // Postgres did not send it: absent (unavailable), never null.
      expect(changes[1]?.record).toEqual({ id: changes[0]?.record?.['id'], tenant_id: 'a', title: 'final' });
      expect(payloads[1]).toEqual({ title: 'final' });
    }
    // Without the body the filter cannot judge the update: delivered rather than dropped (the next test).
    const filtered = received.filter((message) => message.id === 'hasBody').map(changeOf);
    expect(filtered.map((change) => change.operation)).toEqual(['CREATED', 'UPDATED']);
    expect(received).toHaveLength(6);
    expect(await messagesBeforePong(socket)).toEqual([]);
  });

  it('delivers an update whose filtered column is a TOASTed value it left unchanged (not sent without REPLICA IDENTITY FULL), unless a column it has is outside the filter', async () => {
    const setup = await setUpCdc();
    const table = uniqueName('notes');
    await setup.source.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, tenant_id text NOT NULL, title text, body text)`);
    // Out of line and uncompressed: an update that leaves the body alone does not send it.
    await setup.source.query(`ALTER TABLE ${table} ALTER COLUMN body SET STORAGE EXTERNAL`);
    await saveMappingOk(setup, { name: 'notes', table, events: ['insert', 'update'], topic: 'docs.note-events', module: 'docs', model: 'notes', tenantColumn: 'tenant_id' });
    const filters: Record<string, unknown> = {
      withBody: { body: 'is.notnull' }, // holds the row: must hear of its update
      drafts: { body: 'is.notnull', title: 'eq.draft' }, // holds it; the new title is outside the filter whatever the body: LEFT
      shortBody: { body: 'eq.short' }, // does not hold it, but the update cannot tell: delivered, ignored by id
    };
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['docs.read'] });
    sendChanges(socket, 'all', { m: 'notes' });
    for (const [id, f] of Object.entries(filters)) sendChanges(socket, id, { m: 'notes', f });
    await waitForSubscribers(setup.server, 4);

    await setup.source.query(`INSERT INTO ${table} (tenant_id, title, body) VALUES ('a', 'draft', repeat('x', 10000))`);
    await setup.source.query(`UPDATE ${table} SET title = 'final'`);

    // Up to the unfiltered subscription's update (the control), then whatever else was written before a pong.
    const received = await takeUntil(socket, (message) => message.id === 'all' && changeOf(message).operation === 'UPDATED');
    received.push(...(await messagesBeforePong(socket)));
    const changesOf = (id: string) => received.filter((message) => message.id === id).map(changeOf);
    const seen = (id: string) => changesOf(id).map(({ operation, record }) => [operation, record]);
    const inserted = { id: changesOf('all')[0]?.record?.['id'], tenant_id: 'a', title: 'draft', body: 'x'.repeat(10_000) };
    const updated = { id: inserted.id, tenant_id: 'a', title: 'final' }; // the body Postgres did not send is absent
    expect(seen('all')).toEqual([['CREATED', inserted], ['UPDATED', updated]]);
    expect(seen('withBody')).toEqual([['CREATED', expect.anything()], ['UPDATED', updated]]);
    expect(seen('drafts')).toEqual([['CREATED', expect.anything()], ['LEFT', null]]);
    expect(seen('shortBody')).toEqual([['UPDATED', updated]]);
  });
});

describe('CDC transactions and DDL', () => {
  it('emits nothing for a rolled-back transaction or a rolled-back savepoint', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const client = await subscribeChanges(setup, READ_CONTACTS, { m: 'contacts' });
    await waitForSubscribers(setup.server, 1);

    const connection = await setup.source.connect();
    onTestFinished(() => connection.release());
    await connection.query('BEGIN');
    await connection.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'ghost')`);
    await connection.query(`UPDATE contacts SET status = 'gone'`);
    await connection.query('ROLLBACK');
    await connection.query('BEGIN');
    await connection.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'kept')`);
    await connection.query('SAVEPOINT s');
    await connection.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'ghost-in-savepoint')`);
    await connection.query(`UPDATE contacts SET status = 'undone' WHERE name = 'kept'`);
    await connection.query('ROLLBACK TO SAVEPOINT s');
    await connection.query('COMMIT');

    expect(await nextChange(client, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'kept', status: null } });
    expect(await messagesBeforePong(client)).toEqual([]);
  });

  it('delivers every change of interleaved transactions, each row\'s changes in order, stamped with its transaction\'s commit time', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const client = await subscribeChanges(setup, READ_CONTACTS, { m: 'contacts' });
    await waitForSubscribers(setup.server, 1);

    const [first, second] = [await setup.source.connect(), await setup.source.connect()];
    onTestFinished(() => {
      first.release();
      second.release();
    });
    // Milliseconds since the epoch, rounded down (before) and up (after) like the commit time is.
    const now = async (round: 'floor' | 'ceil') =>
      Number((await first.query<{ ms: string }>(`SELECT ${round}(extract(epoch FROM clock_timestamp()) * 1000)::int8 AS ms`)).rows[0]?.ms);
    const before = await now('floor');
    await first.query('BEGIN');
    await first.query(`INSERT INTO contacts (tenant_id, name, status) VALUES ('a', 'x1', 'one')`);
    await second.query('BEGIN');
    await second.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'y1'), ('a', 'y2')`);
    await second.query('COMMIT');
    await first.query(`UPDATE contacts SET status = 'two' WHERE name = 'x1'`);
    await first.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'x2')`);
    await first.query(`UPDATE contacts SET status = 'three' WHERE name = 'x1'`);
    await first.query('COMMIT');
    const after = await now('ceil');

    const changes = await takeChanges(client, 'c', 6);
    const rows = changes.map((change) => [change.operation, change.record?.['name'], change.record?.['status']]);
    // What the reader promises is per-row order (seed 004: per-entity ordering; "cross-entity
    // ordering: not guaranteed"), so different rows may arrive in any order, even across
    // transactions; every change arrives, and each row's changes keep their commit order.
    expect(rows.filter((row) => row[1] === 'x1')).toEqual([
      ['CREATED', 'x1', 'one'],
      ['UPDATED', 'x1', 'two'],
      ['UPDATED', 'x1', 'three'],
    ]);
    expect(rows.filter((row) => row[1] !== 'x1').sort()).toEqual([
      ['CREATED', 'x2', null],
      ['CREATED', 'y1', null],
      ['CREATED', 'y2', null],
    ]);
    // Each change carries its own transaction's commit time: the second transaction committed first.
    const timeOf = (names: readonly string[]) => new Set(changes.filter((change) => names.includes(String(change.record?.['name']))).map((change) => Date.parse(change.lastUpdatedAt)));
    const secondCommit = timeOf(['y1', 'y2']);
    const firstCommit = timeOf(['x1', 'x2']);
    expect(secondCommit.size).toBe(1);
    expect(firstCommit.size).toBe(1);
    const [secondAt, firstAt] = [[...secondCommit][0] ?? NaN, [...firstCommit][0] ?? NaN];
    expect(secondAt).toBeLessThanOrEqual(firstAt);
    expect(secondAt).toBeGreaterThanOrEqual(before);
    expect(firstAt).toBeLessThanOrEqual(after);
    expect(await messagesBeforePong(client)).toEqual([]);
  });

  it('keeps delivering across TRUNCATE and ALTER TABLE ADD COLUMN, with the new column in the record', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const socket = await socketFor(setup, READ_CONTACTS);
    sendChanges(socket, 'c', { m: 'contacts' });
    // A filter on a column the table does not have (yet) is refused: it would match nothing.
    sendChanges(socket, 'early', { m: 'contacts', f: { tag: 'eq.x' } });
    await expectRefused(socket, 'early', { code: 'BAD_USER_INPUT', field: 'filter', column: 'tag' });
    await waitForSubscribers(setup.server, 1);

    await insertContact(setup, 'a', 'before-truncate');
    expect(await nextChange(socket, 'c')).toMatchObject({ record: { name: 'before-truncate' } });
    await setup.source.query('TRUNCATE contacts');
    // The history ends (TRUNCATE names no rows): the subscriber that had a change resyncs.
    await expectSubscriptionError(socket, 'c', 'RESYNC_REQUIRED');
    sendChanges(socket, 'c', { m: 'contacts' });
    await waitForSubscribers(setup.server, 1);
    await insertContact(setup, 'a', 'after-truncate');
    expect(await nextChange(socket, 'c')).toMatchObject({ operation: 'CREATED', record: { name: 'after-truncate' } });

    await setup.source.query('ALTER TABLE contacts ADD COLUMN score int NOT NULL DEFAULT 7');
    await setup.source.query(`INSERT INTO contacts (tenant_id, name, score) VALUES ('a', 'scored', 9)`);
    const scored = await nextChange(socket, 'c');
    expect(scored).toMatchObject({ operation: 'CREATED', record: { name: 'scored', score: 9 } });
    await setup.source.query(`UPDATE contacts SET status = 'active' WHERE name = 'after-truncate'`);
    expect(await nextChange(socket, 'c')).toMatchObject({ operation: 'UPDATED', record: { name: 'after-truncate', score: 7 } });

    // Within one transaction: the row before the ALTER has the old columns, the one after the new.
    const connection = await setup.source.connect();
    onTestFinished(() => connection.release());
    await connection.query('BEGIN');
    await connection.query(`INSERT INTO contacts (tenant_id, name) VALUES ('a', 'untagged')`);
    await connection.query('ALTER TABLE contacts ADD COLUMN tag text');
    await connection.query(`INSERT INTO contacts (tenant_id, name, tag) VALUES ('a', 'tagged', 'x')`);
    await connection.query('COMMIT');
    const untagged = await nextChange(socket, 'c');
    expect(untagged.record).toMatchObject({ name: 'untagged' });
    expect(untagged.record).not.toHaveProperty('tag');
    expect((await nextChange(socket, 'c')).record).toMatchObject({ name: 'tagged', tag: 'x', score: 7 });

    // The column exists now, so a filter on it is taken (no restart); replayed from before it existed,
    // each change is judged as it was logged. An update without the column cannot be judged (as one
    // lacking an unchanged TOASTed value): delivered, not dropped; an insert without it does not match.
    sendChanges(socket, 'tagged', { m: 'contacts', f: { tag: 'eq.x' }, a: scored.cursor });
    const replayed = await nextChange(socket, 'tagged');
    expect(replayed).toMatchObject({ operation: 'UPDATED', record: { name: 'after-truncate', score: 7 } });
    expect(replayed.record).not.toHaveProperty('tag');
    expect(await nextChange(socket, 'tagged')).toMatchObject({ operation: 'CREATED', record: { name: 'tagged', tag: 'x', score: 7 } });
    expect(await messagesBeforePong(socket)).toEqual([]);
  });
});

describe('CDC mapping administration', () => {
  it('applies a changed mapping without a restart and stops its events once deleted', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    // A second mapping on the same table: the positive control once the first is gone.
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, name: 'audit', topic: 'crm.audit', model: 'contact-audit' });
    const socket = await socketFor(setup, { tenant: 'a', permissions: ['crm.read'] });
    subscribeEvents(socket, 'v1', { topic: 'crm.contact-events' });
    subscribeEvents(socket, 'v2', { topic: 'crm.contact-updates' });
    subscribeEvents(socket, 'audit', { topic: 'crm.audit' });
    sendChanges(socket, 'changes', { m: 'contacts' });
    await waitForSubscribers(setup.server, 4);

    await insertContact(setup, 'a', 'Ann');
    expect((await takeMessages(socket, 3)).map((message) => message.id).sort()).toEqual(['audit', 'changes', 'v1']);

    await saveMappingOk(setup, { ...CONTACTS_MAPPING, topic: 'crm.contact-updates', events: ['update'], when: { changed: 'status' } });
    await setup.source.query(`UPDATE contacts SET name = 'Anna'`);
    expect(await takeMessages(socket, 1)).toMatchObject([{ id: 'audit' }]);
    await setup.source.query(`UPDATE contacts SET status = 'active'`);
    const updated = await takeMessages(socket, 3);
    expect(updated.map((message) => message.id).sort()).toEqual(['audit', 'changes', 'v2']);
    expect(eventOf(updated.find((message) => message.id === 'v2') ?? { type: 'none' }).payload).toMatchObject({ status: 'active' });
    expect(await messagesBeforePong(socket)).toEqual([]);

    const deleted = await gql(setup.server, setup.admin, 'mutation { deleteCdcMapping(name: "contacts") }');
    expect(deleted).toEqual({ data: { deleteCdcMapping: true } });
    await setup.source.query(`UPDATE contacts SET status = 'churned'`);
    await insertContact(setup, 'a', 'Bob');
    expect((await takeMessages(socket, 2)).map((message) => [message.id, eventOf(message).payload['name']])).toEqual([
      ['audit', 'Anna'],
      ['audit', 'Bob'],
    ]);
    expect(await messagesBeforePong(socket)).toEqual([]);

    // The model is gone: a new subscription is refused silently, like any unknown model.
    const deniedBefore = await deniedChanges(setup.server);
    sendChanges(socket, 'later', { m: 'contacts' });
    await waitFor(async () => (await deniedChanges(setup.server)) === deniedBefore + 1);
    expect(await gql(setup.server, setup.admin, 'mutation { deleteCdcMapping(name: "contacts") }')).toEqual({ data: { deleteCdcMapping: false } });
  });

  it('refuses every CDC admin operation to a token without the admin role', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const user = await signHs256({ tenant: 'a', roles: ['editor'], permissions: ['crm.read', 'admin.read', 'admin'] });
    for (const [query, variables] of adminOperations(setup)) {
      const body = await gql(setup.server, user, query, variables);
      expect(errorOf(body)?.extensions?.['code'], query).toBe('FORBIDDEN');
    }
    // Nothing changed: the mapping is as saved and the source still set.
    const listed = await gql(setup.server, setup.admin, '{ cdcMappings { name topic } cdcSource { status { state } } }');
    expect(listed.data).toEqual({ cdcMappings: [{ name: 'contacts', topic: 'crm.contact-events' }], cdcSource: { status: { state: 'streaming' } } });
  });

  it('refuses every CDC admin operation to an admin token limited to one tenant: the source and mappings are the whole environment’s', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const tenantAdmin = await signHs256({ tenant: 'a', roles: ['admin'], permissions: [] });
    for (const [query, variables] of adminOperations(setup)) {
      const error = errorOf(await gql(setup.server, tenantAdmin, query, variables));
      expect(error?.extensions?.['code'], query).toBe('FORBIDDEN');
      expect(error?.message, query).toContain('admin token without a tenant');
    }
    const listed = await gql(setup.server, setup.admin, '{ cdcMappings { name topic } cdcSource { status { state } } }');
    expect(listed.data).toEqual({ cdcMappings: [{ name: 'contacts', topic: 'crm.contact-events' }], cdcSource: { status: { state: 'streaming' } } });
  });

  it("never returns the source database's password", async () => {
    const password = `pw-${uniqueName('secret')}`;
    const setup = await setUpCdc({ password });
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const body = await gql(
      setup.server,
      setup.admin,
      '{ cdcSource { host database user updatedAt status { state leading lastAcknowledgedLsn lastError } } cdcMappings { definition } }',
    );
    expect(body.errors).toBeUndefined();
    expect(body.data?.['cdcSource']).toMatchObject({ user: new URL(setup.sourceUrl).username, status: { state: 'streaming' } });
    expect(JSON.stringify(body)).not.toContain(password);
    const type = await gql(setup.server, setup.admin, '{ __type(name: "CdcSource") { fields { name } } }');
    expect((type.data?.['__type'] as { fields: { name: string }[] }).fields.map((field) => field.name).sort()).toEqual([
      'database',
      'host',
      'status',
      'updatedAt',
      'user',
    ]);
    // Nor in the error for a database that cannot be reached.
    const unreachable = new URL(setup.sourceUrl);
    unreachable.port = '1';
    const refused = await gql(setup.server, setup.admin, 'mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', {
      url: unreachable.toString(),
    });
    // Unreachable right now (a closed port): UNAVAILABLE, retry — not the caller's input.
    expect(errorOf(refused)?.extensions).toMatchObject({ code: 'UNAVAILABLE', field: 'databaseUrl' });
    expect(JSON.stringify(refused)).not.toContain(password);
  });

  it("refuses a mapping whose topic is another mapping's model stream, where its rows would pass for that model's changes", async () => {
    const setup = await setUpCdc();
    await setup.source.query('CREATE TABLE invoices (id serial PRIMARY KEY, tenant_id text NOT NULL, total int)');
    await setup.source.query('ALTER TABLE invoices REPLICA IDENTITY FULL');
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const invoices = { name: 'invoices', table: 'invoices', events: ['insert'], module: 'billing', model: 'invoices', tenantColumn: 'tenant_id' };
    // `crm.contacts` is what changes(model: "contacts") reads with crm.contacts.read: invoices
    // published there would reach it as changes of contacts, without billing.invoices.read.
    const topicIsModel = errorOf(await saveMapping(setup, { ...invoices, topic: 'crm.contacts' }));
    expect(topicIsModel?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    const templated = errorOf(await saveMapping(setup, { ...invoices, topic: 'crm.{$row.tenant_id}' }));
    expect(templated?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    // The other way round: a model whose stream is already another mapping's topic.
    await saveMappingOk(setup, { ...invoices, topic: 'crm.invoice-events' });
    const modelIsTopic = errorOf(await saveMapping(setup, { ...CONTACTS_MAPPING, name: 'events', model: 'invoice-events' }));
    expect(modelIsTopic?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    expect((await gql(setup.server, setup.admin, '{ cdcMappings { name topic } }')).data).toEqual({
      cdcMappings: [
        { name: 'contacts', topic: 'crm.contact-events' },
        { name: 'invoices', topic: 'crm.invoice-events' },
      ],
    });
  });

  it('refuses a bad mapping with BAD_USER_INPUT naming the path of the bad field, or what the table lacks', async () => {
    const setup = await setUpCdc();
    const invalid: [unknown, string][] = [
      [{ ...CONTACTS_MAPPING, when: { and: [{ changed: 'status' }, { eq: ['$row.status'] }] } }, 'when.and[1].eq'],
      [{ ...CONTACTS_MAPPING, when: { changed: 'status', eq: ['$row.status', 'x'] } }, 'when'],
      [{ ...CONTACTS_MAPPING, events: ['upsert'] }, 'events[0]'],
      [{ ...CONTACTS_MAPPING, topic: 'crm.{$row.status' }, 'topic'],
      [{ ...CONTACTS_MAPPING, topic: 'crm.*' }, 'topic'],
      [{ ...CONTACTS_MAPPING, payload: { who: { name: '$new.name' } } }, 'payload.who.name'],
      [{ ...CONTACTS_MAPPING, tenantColumn: 'tenant id' }, 'tenantColumn'],
      [{ ...CONTACTS_MAPPING, module: 'crm.sales' }, 'module'],
      [{ ...CONTACTS_MAPPING, table: 'a.b.c' }, 'table'],
      [{ ...CONTACTS_MAPPING, key: ['id', 'id'] }, 'key'],
      [{ ...CONTACTS_MAPPING, model: undefined }, 'model'],
      ['contacts', ''],
    ];
    for (const [mapping, path] of invalid) {
      const error = errorOf(await saveMapping(setup, mapping));
      expect(error?.extensions, JSON.stringify(mapping)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping', path });
    }
    // Valid JSON that does not fit the table: each problem named with its fix.
    const unfit: [unknown, string][] = [
      [{ ...CONTACTS_MAPPING, tenantColumn: 'org_id' }, 'column "org_id" does not exist in public.contacts'],
      [{ ...CONTACTS_MAPPING, table: 'nowhere' }, 'table public.nowhere does not exist'],
      [{ ...CONTACTS_MAPPING, topic: 'crm.contacts' }, 'is the model stream of crm.contacts'],
    ];
    for (const [mapping, message] of unfit) {
      const error = errorOf(await saveMapping(setup, mapping));
      expect(error?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
      expect(error?.message).toContain(message);
    }
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const otherModule = errorOf(await saveMapping(setup, { ...CONTACTS_MAPPING, name: 'sales-contacts', module: 'sales', topic: 'sales.contact-events' }));
    expect(otherModule?.message).toContain('model "contacts" already belongs to module "crm"');
    expect((await gql(setup.server, setup.admin, '{ cdcMappings { name } }')).data).toEqual({ cdcMappings: [{ name: 'contacts' }] });
  });
});

/** Every CDC admin operation, each with variables that would change or read the environment's source and mappings. */
function adminOperations(setup: CdcSetup): [string, Record<string, unknown>][] {
  return [
    ['mutation($url: String!) { setCdcSource(databaseUrl: $url) { host } }', { url: setup.sourceUrl }],
    ['mutation { removeCdcSource }', {}],
    ['mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name } }', { m: { ...CONTACTS_MAPPING, topic: 'crm.stolen' } }],
    ['mutation { deleteCdcMapping(name: "contacts") }', {}],
    ['{ cdcMappings { name definition } }', {}],
    ['{ cdcSource { host user status { state } } }', {}],
  ];
}
