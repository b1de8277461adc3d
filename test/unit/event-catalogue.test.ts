import { describe, expect, it } from 'vitest';
import { InternalError } from '../../src/errors.ts';
import { ALERT_TOPIC, alertEvent, readAlertEvent, type AlertEventPayload } from '../../src/pipeline/events/alert-event.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { documentChange, documentSnapshot, readDocumentChange } from '../../src/pipeline/events/document-change.ts';
import { stableEventId } from '../../src/pipeline/events/event-id.ts';
import { gatewayEvent } from '../../src/pipeline/events/gateway-event.ts';
import { publishedMessage } from '../../src/pipeline/events/message.ts';
import { outboxEvent } from '../../src/pipeline/events/outbox-event.ts';
import { modelChange, readModelChange } from '../../src/pipeline/events/model-change.ts';

const scope = { app: 'shop', env: 'prod', tenant: 't1' };

function placed(input: Omit<RealtimeEvent, 'metadata' | 'cursor' | 'id'> & { id?: string }): RealtimeEvent {
  return { id: 'evt_1', cursor: 'c', metadata: { timestamp: 1, scope }, ...input };
}

describe('the event catalogue', () => {
  it('builds a document change with its type, revision and entity, and reads it back typed', () => {
    const input = documentChange({
      id: 'evt_doc',
      scope,
      entity: 'boards/b1',
      operation: 'updated',
      payload: { service: 'boards', documentId: 'b1', revision: 2, data: { a: 2 }, diff: [{ op: 'replace', path: '/a', value: 2 }] },
    });
    expect(input).toMatchObject({ id: 'evt_doc', source: 'sync', type: 'sync.updated', revision: 2, entity: 'boards/b1', scope });
    const read = readDocumentChange(placed({ ...input, topic: 'sync.boards.updated' }));
    expect(read).toEqual({ type: 'sync.updated', payload: input.payload });
  });

  it('builds the snapshot a document subscription starts with, at the revision it was read', () => {
    const snapshot = documentSnapshot({ scope, topic: 'sync.boards.doc.b1', cursor: 'head', payload: { service: 'boards', documentId: 'b1', revision: 0, data: null } });
    expect(snapshot).toMatchObject({ id: 'snapshot_boards_b1_0', type: 'sync.snapshot', source: 'sync', cursor: 'head', metadata: { revision: 0, scope } });
    expect(readDocumentChange(snapshot).payload).toEqual({ service: 'boards', documentId: 'b1', revision: 0, data: null });
  });

  it('builds a model change as a database event and reads it back typed', () => {
    const input = modelChange({
      id: 'evt_row',
      topic: 'crm.contacts',
      type: 'database.update',
      scope,
      entity: 'public.contacts/7',
      table: 'public.contacts',
      operation: 'update',
      payload: { operation: 'UPDATED', model: 'contacts', id: '7', record: { id: 7 }, lastUpdatedAt: '2026-12-02T00:00:00.000Z' },
    });
    expect(input).toMatchObject({ source: 'database', table: 'public.contacts', operation: 'update' });
    expect(readModelChange(placed(input))).toEqual(input.payload);
  });

  it('builds a published message in the publisher scope with nothing of the other sources', () => {
    expect(publishedMessage({ scope, topic: 'chat.room', type: 'message', payload: { text: 'hi' } })).toEqual({
      source: 'socket',
      topic: 'chat.room',
      type: 'message',
      scope,
      payload: { text: 'hi' },
    });
  });

  it('builds an outbox row as a database event whose id is the same each time the row is routed', () => {
    const row = {
      outbox: 'db1/public.event_outbox',
      rowId: '42',
      topic: 'orders.created',
      type: 'order.created',
      payload: { orderId: 7 },
      scope,
      entity: 'order/7',
      table: 'orders',
      operation: 'insert',
    } as const;
    const event = outboxEvent(row);
    const { outbox: _outbox, rowId: _rowId, ...fields } = row;
    expect(event).toEqual({ id: stableEventId('outbox', 'db1/public.event_outbox', '42'), source: 'database', ...fields });
    expect(outboxEvent(row).id).toBe(event.id);
    expect(outboxEvent({ ...row, rowId: '43' }).id).not.toBe(event.id);
    expect(outboxEvent({ ...row, outbox: 'db2/public.event_outbox' }).id).not.toBe(event.id);
    // Created at another time: a row that reuses the id after the table's ids restarted.
    const created = outboxEvent({ ...row, created: '1717237800123' }).id;
    expect(created).toBe(stableEventId('outbox', 'db1/public.event_outbox', '42', '1717237800123'));
    expect(outboxEvent({ ...row, created: '1717237800124' }).id).not.toBe(created);
    expect(outboxEvent({ ...row, entity: undefined, table: undefined, operation: undefined })).not.toHaveProperty('table');
  });

  it('builds gateway lifecycle events on the topic of their type, keyed by the connection', () => {
    expect(gatewayEvent({ scope, connectionId: 'c1', subject: 'u1', event: { type: 'gateway.disconnected', code: 4403 } })).toEqual({
      source: 'socket',
      topic: 'gateway.disconnected',
      type: 'gateway.disconnected',
      scope,
      entity: 'c1',
      payload: { connectionId: 'c1', subject: 'u1', code: 4403 },
    });
    expect(gatewayEvent({ scope, connectionId: 'c1', subject: 'u1', event: { type: 'gateway.broadcast', channel: 'room', event: 'typing' } }).payload).toEqual({
      connectionId: 'c1',
      subject: 'u1',
      channel: 'room',
      event: 'typing',
    });
    // A broadcast over HTTP has no connection: no connectionId, no entity (its own webhook lane).
    const overHttp = gatewayEvent({ scope, connectionId: undefined, subject: 'u1', event: { type: 'gateway.broadcast', channel: 'room', event: 'typing' } });
    expect(overHttp.payload).toEqual({ subject: 'u1', channel: 'room', event: 'typing' });
    expect(overHttp).not.toHaveProperty('entity');
    // A subscription without a topic (a channel) carries no `topic` key at all.
    expect(gatewayEvent({ scope, connectionId: 'c1', subject: 'u1', event: { type: 'gateway.subscribed', field: 'channel', topic: undefined } }).payload).toStrictEqual({
      connectionId: 'c1',
      subject: 'u1',
      field: 'channel',
    });
  });

  it.each([
    ['a socket event', { source: 'socket', type: 'message', payload: { operation: 'UPDATED' } }],
    ['an unknown operation', { source: 'database', type: 'x', payload: { operation: 'MOVED', model: 'm', id: '1', record: null, lastUpdatedAt: '2026-01-01T00:00:00Z' } }],
    ['a numeric id', { source: 'database', type: 'x', payload: { operation: 'CREATED', model: 'm', id: 1, record: null, lastUpdatedAt: '2026-01-01T00:00:00Z' } }],
    ['a missing commit time', { source: 'database', type: 'x', payload: { operation: 'CREATED', model: 'm', id: '1', record: null } }],
  ] as const)('refuses to read %s as a model change, with an internal EVENT_SHAPE fault', (_name, shape) => {
    const event = placed({ topic: 'crm.contacts', ...shape });
    expect(() => readModelChange(event)).toThrow(InternalError);
    expect(() => readModelChange(event)).toThrow(expect.objectContaining({ fault: 'EVENT_SHAPE' }));
  });

  it.each([
    ['a database event', { source: 'database', type: 'sync.updated', payload: { service: 's', documentId: 'd', revision: 1 } }],
    ['an unknown type', { source: 'sync', type: 'sync.moved', payload: { service: 's', documentId: 'd', revision: 1 } }],
    ['a fractional revision', { source: 'sync', type: 'sync.updated', payload: { service: 's', documentId: 'd', revision: 1.5 } }],
    ['a diff that is not a patch', { source: 'sync', type: 'sync.updated', payload: { service: 's', documentId: 'd', revision: 1, diff: {} } }],
  ] as const)('refuses to read %s as a document change', (_name, shape) => {
    expect(() => readDocumentChange(placed({ topic: 'sync.s.doc.d', ...shape }))).toThrow(expect.objectContaining({ fault: 'EVENT_SHAPE' }));
  });

  const alertPayload: AlertEventPayload = {
    alertId: 'alr_1',
    rule: 'webhook_failure_rate',
    subject: 'whe_1',
    tenant: null,
    severity: 'critical',
    state: 'firing',
    count: 2,
    value: 0.5,
    message: 'failing',
    firstFiredAt: '2026-01-01T00:00:00.000Z',
    lastFiredAt: '2026-01-01T00:01:00.000Z',
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
  };

  it('builds an alert event and reads its payload back, severity and state typed', () => {
    const input = alertEvent({ kind: 'fired', app: 'shop', env: 'prod', payload: alertPayload });
    expect(readAlertEvent(placed({ ...input, topic: ALERT_TOPIC }))).toEqual(alertPayload);
  });

  it.each([
    ['an unknown severity', { severity: 'fatal' }],
    ['an unknown state', { state: 'silenced' }],
  ] as const)('refuses to read an alert event with %s, with an internal EVENT_SHAPE fault', (_name, change) => {
    const input = alertEvent({ kind: 'fired', app: 'shop', env: 'prod', payload: alertPayload });
    const event = placed({ ...input, topic: ALERT_TOPIC, payload: { ...input.payload, ...change } });
    expect(() => readAlertEvent(event)).toThrow(expect.objectContaining({ fault: 'EVENT_SHAPE' }));
  });
});
