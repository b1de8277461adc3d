/**
 * TRUNCATE of mapped tables, the pure parts: which model streams a TRUNCATE ends, the barrier that
 * keeps it between the changes committed before and after it, and what the log holds afterwards
 * (the embedded log, the real router).
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createChunkBarrier } from '../../src/pipeline/cdc/chunk-barrier.ts';
import { parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { endTruncatedHistories, truncatedModels } from '../../src/pipeline/cdc/model-truncates.ts';
import type { RealtimeEvent, UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { streamOf } from '../../src/pipeline/stream.ts';

const logger = createLogger({ level: 'silent' });
const contacts = parseMapping({ name: 'contacts', table: 'contacts', events: ['insert', 'update', 'delete'], topic: 'crm.contact-events', module: 'crm', model: 'contacts', tenantColumn: 'tenant_id' });
const notes = parseMapping({ name: 'notes', table: 'app.notes', events: ['insert'], topic: 'crm.note-events', module: 'crm', model: 'notes', tenantColumn: 'tenant_id' });
const prod = { app: 'shop', env: 'prod' };
const staging = { app: 'shop', env: 'staging' };
const table = (schema: string, name: string) => ({ schema, name });

describe('truncatedModels', () => {
  it('names the model streams of every environment mapping a truncated table, and none for unmapped tables', () => {
    const bindings = [
      { scope: prod, mappings: [contacts, notes] },
      { scope: staging, mappings: [contacts] },
    ];
    // CASCADE: the referencing tables come with it, mapped or not.
    const cascade = { lsn: '0/10', tables: [table('public', 'accounts'), table('public', 'contacts')] };
    expect(truncatedModels(bindings, cascade)).toEqual([
      { scope: prod, topic: 'crm.contacts', model: 'contacts', tables: ['public.contacts'] },
      { scope: staging, topic: 'crm.contacts', model: 'contacts', tables: ['public.contacts'] },
    ]);
    expect(truncatedModels(bindings, { lsn: '0/20', tables: [table('app', 'notes')] })).toEqual([{ scope: prod, topic: 'crm.notes', model: 'notes', tables: ['app.notes'] }]);
    expect(truncatedModels(bindings, { lsn: '0/30', tables: [table('public', 'notes'), table('public', 'accounts')] })).toEqual([]);
  });
});

describe('createChunkBarrier', () => {
  it('runs a barrier after every handler started before it settled (failed ones too), and later handlers after it', async () => {
    const barrier = createChunkBarrier();
    const order: string[] = [];
    const first = Promise.withResolvers<void>();
    const failing = Promise.withResolvers<void>();
    const a = barrier.run(async () => {
      await first.promise;
      order.push('a');
    });
    const b = barrier.run(async () => {
      await failing.promise;
      order.push('b');
      throw new Error('b failed');
    });
    const truncate = barrier.runAlone(() => {
      order.push('truncate');
      return Promise.resolve();
    });
    const c = barrier.run(() => {
      order.push('c');
      return Promise.resolve();
    });
    const d = barrier.run(() => {
      order.push('d');
      return Promise.resolve();
    });
    await Promise.resolve();
    expect(order).toEqual([]);
    failing.resolve();
    await expect(b).rejects.toThrow('b failed');
    expect(order).toEqual(['b']);
    first.resolve();
    await Promise.all([a, truncate, c, d]);
    expect(order).toEqual(['b', 'a', 'truncate', 'c', 'd']);
    // No barrier pending: a handler runs at once, in the caller's turn.
    let ran = false;
    const e = barrier.run(() => {
      ran = true;
      return Promise.resolve();
    });
    expect(ran).toBe(true);
    await e;
  });
});

describe('endTruncatedHistories', () => {
  it("gives every existing tenant's model stream a new history that starts with the marker, leaving other streams alone", async () => {
    const live: RealtimeEvent[] = [];
    const log = createMemoryLog({ retention: { maxEvents: 100, maxAgeMs: 3_600_000 }, publish: (_stream, event) => live.push(event) });
    const router = createEventRouter({ log, logger });
    const change = (tenant: string, topic: string): UnplacedEvent => ({
      id: `evt_${tenant}_${topic}`,
      topic,
      source: 'database',
      type: 'contacts.created',
      payload: {},
      metadata: { timestamp: 1, scope: { ...prod, tenant }, transaction: { source: 's', xid: 1, commitLsn: '0/1' } },
    });
    const a = streamOf({ ...prod, tenant: 'a' }, 'crm.contacts');
    const b = streamOf({ ...prod, tenant: 'b' }, 'crm.contacts');
    const other = streamOf({ ...prod, tenant: 'a' }, 'crm.contact-events');
    const before = [await log.append(a, change('a', a.topic)), await log.append(b, change('b', b.topic)), await log.append(other, change('a', other.topic))];
    live.length = 0;

    const models = truncatedModels([{ scope: prod, mappings: [contacts] }], { lsn: '0/40', tables: [table('public', 'contacts')] });
    const renewed = await endTruncatedHistories({ source: 's', log, router, logger }, models, { truncate: { lsn: '0/40', tables: [] }, lastUpdatedAt: '2026-01-01T00:00:00.000Z' });

    expect(renewed).toBe(2);
    await expect(log.readAfter(a, before[0]!.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    await expect(log.readAfter(b, before[1]!.cursor, 10)).rejects.toMatchObject({ code: 'RESYNC_REQUIRED' });
    expect(await log.readAfter(other, before[2]!.cursor, 10)).toEqual([]);
    // Published live, one per tenant stream, in the new history: no entity, no WAL transaction.
    expect(live.map((event) => [event.metadata.scope.tenant, event.topic, event.type, event.payload])).toEqual(
      ['a', 'b'].map((tenant) => [tenant, 'crm.contacts', 'database.truncate', { operation: 'TRUNCATED', model: 'contacts', tables: ['public.contacts'], lastUpdatedAt: '2026-01-01T00:00:00.000Z' }]),
    );
    expect(live.every((event) => event.metadata.transaction === undefined && event.metadata.entity === undefined)).toBe(true);
    // One event each: a webhook endpoint without a tenant stores one delivery per event id.
    expect(new Set(live.map((event) => event.id)).size).toBe(2);
    expect(await log.head(a)).toBe(live[0]!.cursor);
  });
});
