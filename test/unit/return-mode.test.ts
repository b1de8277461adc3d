import { describe, expect, it } from 'vitest';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { applyReturnMode } from '../../src/pipeline/dispatch/return-mode.ts';

function syncEvent(payload: Record<string, unknown>): RealtimeEvent {
  return {
    id: 'evt_1',
    topic: 'sync.orders.updated',
    source: 'sync',
    type: 'sync.updated',
    payload,
    metadata: { timestamp: 1, revision: 4, scope: { app: 'a', env: 'e', tenant: 't' }, entity: 'ord_1' },
    cursor: '0-1',
  };
}

const FULL_PAYLOAD = {
  service: 'orders',
  documentId: 'ord_1',
  revision: 4,
  data: { status: 'paid' },
  diff: [{ op: 'replace', path: '/status', value: 'paid' }],
};

/** A deep, frozen copy: any write to the input fails the test instead of passing silently. */
function frozenEvent(): RealtimeEvent {
  const event = syncEvent(structuredClone(FULL_PAYLOAD));
  deepFreeze(event);
  return event;
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  for (const child of Object.values(value)) deepFreeze(child);
  Object.freeze(value);
}

describe('applyReturnMode', () => {
  it('FULL returns the very same event object', () => {
    const event = frozenEvent();
    expect(applyReturnMode(event, 'FULL')).toBe(event);
  });

  it('DATA drops diff and keeps data and the identifiers', () => {
    const result = applyReturnMode(frozenEvent(), 'DATA');
    expect(result.payload).toEqual({ service: 'orders', documentId: 'ord_1', revision: 4, data: { status: 'paid' } });
  });

  it('DIFF drops data and keeps diff and the identifiers', () => {
    const result = applyReturnMode(frozenEvent(), 'DIFF');
    expect(result.payload).toEqual({ service: 'orders', documentId: 'ord_1', revision: 4, diff: FULL_PAYLOAD.diff });
  });

  it('DIFF keeps the data of a created event: it has no diff, and is the base the next diffs apply to', () => {
    const created: RealtimeEvent = { ...syncEvent({ service: 'orders', documentId: 'ord_1', revision: 5, data: { status: 'new' } }), type: 'sync.created' };
    deepFreeze(created);
    expect(applyReturnMode(created, 'DIFF')).toBe(created);
    expect(applyReturnMode(created, 'MINIMAL').payload).toEqual({ service: 'orders', documentId: 'ord_1', revision: 5 });
  });

  it('DIFF drops the data of a deleted event, whose diff leads to nothing', () => {
    const deleted: RealtimeEvent = {
      ...syncEvent({ service: 'orders', documentId: 'ord_1', revision: 6, data: null, diff: [{ op: 'replace', path: '', value: null }] }),
      type: 'sync.deleted',
    };
    expect(applyReturnMode(deleted, 'DIFF').payload).toEqual({ service: 'orders', documentId: 'ord_1', revision: 6, diff: [{ op: 'replace', path: '', value: null }] });
  });

  it('MINIMAL drops both data and diff', () => {
    const result = applyReturnMode(frozenEvent(), 'MINIMAL');
    expect(result.payload).toEqual({ service: 'orders', documentId: 'ord_1', revision: 4 });
  });

  it('keeps every envelope field other than the payload, by reference', () => {
    const event = frozenEvent();
    const result = applyReturnMode(event, 'MINIMAL');
    expect(result).not.toBe(event);
    expect({ ...result, payload: event.payload }).toEqual(event);
    expect(result.metadata).toBe(event.metadata);
    expect(result.payload.service).toBe(event.payload.service);
  });

  it('returns the same event when the payload has nothing the mode strips', () => {
    const created = syncEvent({ service: 'orders', documentId: 'ord_1', revision: 1, data: { status: 'new' } });
    expect(applyReturnMode(created, 'DATA')).toBe(created);
    const bare = syncEvent({ service: 'orders', documentId: 'ord_1', revision: 1 });
    for (const mode of ['FULL', 'DATA', 'DIFF', 'MINIMAL'] as const) {
      expect(applyReturnMode(bare, mode)).toBe(bare);
    }
    const diffOnly = syncEvent({ service: 'orders', documentId: 'ord_1', revision: 2, diff: [] });
    expect(applyReturnMode(diffOnly, 'DIFF')).toBe(diffOnly);
  });

  it('strips a key that is present even when it holds null or undefined', () => {
    const deleted = syncEvent({ service: 'orders', documentId: 'ord_1', revision: 5, data: null, diff: undefined });
    expect(Object.keys(applyReturnMode(deleted, 'MINIMAL').payload)).toEqual(['service', 'documentId', 'revision']);
  });

  it('never mutates the input event or its payload', () => {
    const event = frozenEvent();
    const before = structuredClone(event);
    for (const mode of ['FULL', 'DATA', 'DIFF', 'MINIMAL'] as const) applyReturnMode(event, mode);
    expect(event).toEqual(before);
    expect(event.payload).toHaveProperty('data');
    expect(event.payload).toHaveProperty('diff');
  });

  it('leaves database and socket events untouched, whose data keys belong to the publisher', () => {
    for (const source of ['database', 'socket'] as const) {
      const event: RealtimeEvent = { ...frozenEvent(), source };
      expect(applyReturnMode(event, 'MINIMAL')).toBe(event);
      expect(applyReturnMode(event, 'DIFF')).toBe(event);
    }
  });
});
