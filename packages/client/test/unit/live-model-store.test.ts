import { describe, expect, it } from 'vitest';
import { LiveModelStore, type ModelChange } from '../../src/live-model-store.ts';
import { createRecentIds } from '../../src/recent-ids.ts';

type Contact = { readonly id: number; readonly name: string };

function change(eventId: string, operation: ModelChange['operation'], id: number, name: string | null, at = '2026-01-01T00:00:01.000Z'): ModelChange<Contact> {
  return { eventId, operation, id: String(id), record: name === null ? null : { id, name }, unchangedColumns: [], cursor: `c-${eventId}`, lastUpdatedAt: at } as ModelChange<Contact>;
}

describe('live model store', () => {
  it('tells every listener although one throws, and reports what it threw', () => {
    const errors: unknown[] = [];
    const store = new LiveModelStore<Contact>(undefined, (error) => void errors.push(error));
    const told: string[] = [];
    store.subscribe(() => {
      told.push('first');
      throw new Error('render failed');
    });
    store.subscribe(() => void told.push('second'));
    store.onChange(() => {
      throw new Error('handler failed');
    });
    store.onChange((applied) => void told.push(`change ${applied.eventId}`));
    expect(store.apply(change('e1', 'CREATED', 1, 'Ann'))).toBe(true);
    expect(told).toEqual(['first', 'second', 'change e1']);
    expect(errors.map((error) => (error as Error).message)).toEqual(['render failed', 'handler failed']);
    expect(store.getSnapshot().records).toEqual([{ id: 1, name: 'Ann' }]);
  });

  it('returns the same snapshot until something changes, and a new frozen one after', () => {
    const store = new LiveModelStore<Contact>();
    const first = store.getSnapshot();
    expect(store.getSnapshot()).toBe(first);
    expect(first).toMatchObject({ records: [], status: 'loading', isLive: false, lastUpdatedAt: null, error: null });

    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    const loaded = store.getSnapshot();
    expect(loaded).not.toBe(first);
    expect(store.getSnapshot()).toBe(loaded);
    expect(Object.isFrozen(loaded) && Object.isFrozen(loaded.records)).toBe(true);

    store.setStatus('live');
    const live = store.getSnapshot();
    expect(live).not.toBe(loaded);
    expect(live).toMatchObject({ status: 'live', isLive: true, records: [{ id: 1, name: 'Ann' }] });
    store.setStatus('live');
    expect(store.getSnapshot()).toBe(live);
  });

  it('keeps the same records array and byId map across a status or error change, and gives new ones when a record changes', () => {
    const store = new LiveModelStore<Contact>();
    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    const loaded = store.getSnapshot();
    store.setStatus('live');
    store.setStatus('reconnecting');
    store.setStatus('error', new Error('stopped'));
    const stopped = store.getSnapshot();
    expect(stopped).not.toBe(loaded);
    expect(stopped.records).toBe(loaded.records);
    expect(stopped.byId).toBe(loaded.byId);

    store.apply(change('e1', 'CREATED', 2, 'Bo'));
    const changed = store.getSnapshot();
    expect(changed.records).not.toBe(loaded.records);
    expect(changed.records).toEqual([{ id: 1, name: 'Ann' }, { id: 2, name: 'Bo' }]);
    expect(changed.byId.get('2')).toEqual({ id: 2, name: 'Bo' });
    store.reset();
    expect(store.getSnapshot().records).toEqual([]);
  });

  it('applies creates, updates and deletes by key, and tells listeners after each', () => {
    const store = new LiveModelStore<Contact>();
    let notified = 0;
    store.subscribe(() => void (notified += 1));
    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }, { id: '2', record: { id: 2, name: 'Bo' } }], '2026-01-01T00:00:00.000Z');
    store.apply(change('e1', 'CREATED', 3, 'Cy'));
    store.apply(change('e2', 'UPDATED', 1, 'Anne', '2026-01-01T00:00:02.000Z'));
    store.apply(change('e3', 'DELETED', 2, 'Bo'));
    const snapshot = store.getSnapshot();
    expect(snapshot.records).toEqual([{ id: 1, name: 'Anne' }, { id: 3, name: 'Cy' }]);
    expect(snapshot.byId.get('3')).toEqual({ id: 3, name: 'Cy' });
    expect(snapshot.lastUpdatedAt).toBe('2026-01-01T00:00:02.000Z');
    expect(notified).toBe(4);
  });

  it('applies each event id once: a redelivered older change neither moves a row back nor fires twice', () => {
    const store = new LiveModelStore<Contact>();
    const seen: string[] = [];
    store.onChange((applied, previous) => seen.push(`${applied.operation} ${applied.id} ${previous?.name ?? '-'}→${applied.record?.name ?? '-'}`));
    store.load([], '2026-01-01T00:00:00.000Z');
    const v1 = change('e1', 'CREATED', 1, 'v1');
    const v2 = change('e2', 'UPDATED', 1, 'v2');
    expect(store.apply(v1)).toBe(true);
    expect(store.apply(v2)).toBe(true);
    const before = store.getSnapshot();
    // The server replays from its last confirmed position after a crash: same ids, new cursors.
    expect(store.apply({ ...v1, cursor: 'again-1' })).toBe(false);
    expect(store.apply({ ...v2, cursor: 'again-2' })).toBe(false);
    expect(store.getSnapshot()).toBe(before);
    expect(before.records).toEqual([{ id: 1, name: 'v2' }]);
    expect(seen).toEqual(['CREATED 1 -→v1', 'UPDATED 1 v1→v2']);
  });

  // Postgres leaves a large value an update did not change out of it (unchanged TOAST).
  it('keeps what a held row had in the columns an update lacks, and leaves out an update of a row not held that lacks a filtered column', () => {
    type Note = { readonly id: number; readonly title?: string; readonly body?: string; readonly status?: string };
    const store = new LiveModelStore<Note>(undefined, undefined, ['body', 'status']);
    const told: (Note | Partial<Note> | null)[] = [];
    store.onChange((applied) => void told.push(applied.record));
    store.load([{ id: '1', record: { id: 1, title: 'a', body: 'long text', status: 'open' } }], '2026-01-01T00:00:00.000Z');
    // The columns the update lacks are the ones it lists as unchanged, as the server sends them.
    const columns = ['id', 'title', 'body', 'status'];
    const update = (eventId: string, id: number, record: Note): ModelChange<Note> => ({
      eventId,
      operation: 'UPDATED',
      id: String(id),
      record,
      unchangedColumns: columns.filter((column) => !Object.hasOwn(record, column)),
      cursor: eventId,
      lastUpdatedAt: '2026-01-01T00:00:01.000Z',
    });

    expect(store.apply(update('e1', 1, { id: 1, title: 'b', status: 'open' }))).toBe(true);
    expect(store.apply(update('e2', 2, { id: 2, title: 'x', status: 'open' }))).toBe(false);
    // An update that carries every filtered column brings a row in (it entered the filter).
    expect(store.apply(update('e3', 3, { id: 3, title: 'y', body: 'short', status: 'open' }))).toBe(true);
    expect(store.getSnapshot().records).toEqual([
      { id: 1, title: 'b', body: 'long text', status: 'open' },
      { id: 3, title: 'y', body: 'short', status: 'open' },
    ]);
    expect(told).toEqual([{ id: 1, title: 'b', body: 'long text', status: 'open' }, { id: 3, title: 'y', body: 'short', status: 'open' }]);
  });

  it('replaces every record with a new snapshot (a resync) without telling change listeners', () => {
    const store = new LiveModelStore<Contact>();
    let changes = 0;
    store.onChange(() => void (changes += 1));
    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    store.load([{ id: '2', record: { id: 2, name: 'Bo' } }], '2026-01-01T00:00:05.000Z');
    expect(store.getSnapshot().records).toEqual([{ id: 2, name: 'Bo' }]);
    expect(store.getSnapshot().lastUpdatedAt).toBe('2026-01-01T00:00:05.000Z');
    expect(changes).toBe(0);
  });

  it('keeps the same snapshot, tells no one, and says false for a LEFT or DELETED of a row it does not hold', () => {
    // With a filter the server sends every update outside it as LEFT, and a key-only delete to every subscriber.
    const store = new LiveModelStore<Contact>(undefined, undefined, ['status']);
    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    let notified = 0;
    let changes = 0;
    store.subscribe(() => void (notified += 1));
    store.onChange(() => void (changes += 1));
    const before = store.getSnapshot();
    expect(store.apply(change('e1', 'LEFT', 999, null))).toBe(false);
    expect(store.apply({ ...change('e2', 'DELETED', 998, null), record: { id: 998 } } as ModelChange<Contact>)).toBe(false);
    expect({ notified, changes, same: store.getSnapshot() === before }).toEqual({ notified: 0, changes: 0, same: true });
    // A row it holds still leaves: one notification, one change.
    expect(store.apply(change('e3', 'LEFT', 1, null))).toBe(true);
    expect({ notified, changes, records: store.getSnapshot().records }).toEqual({ notified: 1, changes: 1, records: [] });
  });
});

describe('recent ids', () => {
  it('says false for an id it holds, and forgets the oldest past its capacity', () => {
    const ids = createRecentIds(3);
    expect(['a', 'b', 'a', 'c'].map((id) => ids.add(id))).toEqual([true, true, false, true]);
    expect(ids.add('d')).toBe(true);
    expect(ids.size).toBe(3);
    // 'a' was the oldest: forgotten, so it counts as new again; 'c' is still held.
    expect(ids.add('a')).toBe(true);
    expect(ids.add('c')).toBe(false);
  });

  it('forgets every record, event id and its freshness at a reset (a new login), loading again — a stopped store keeps its error', () => {
    const store = new LiveModelStore<Contact>();
    store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    store.apply(change('e1', 'UPDATED', 1, 'Ann B'));
    store.setStatus('live');
    store.reset();
    expect(store.getSnapshot()).toMatchObject({ records: [], status: 'loading', lastUpdatedAt: null, error: null });
    // The next user's stream may carry an id seen before: it is applied.
    expect(store.apply(change('e1', 'CREATED', 1, 'Bo'))).toBe(true);

    const failed = new LiveModelStore<Contact>();
    failed.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
    const error = new Error('more than 1 records (maxRecords)');
    failed.setStatus('error', error);
    failed.reset();
    expect(failed.getSnapshot()).toMatchObject({ records: [], status: 'error', error });
  });

  describe('a snapshot that left rows out (changed since its first page)', () => {
    const at = (second: number) => `2026-01-01T00:00:0${second}.000Z`;

    it('shows nothing new until the stream brought each, then every row in the snapshot’s order, with no change listener told', () => {
      const store = new LiveModelStore<Contact>();
      const told: string[] = [];
      store.onChange((applied) => void told.push(applied.eventId));
      let renders = 0;
      store.subscribe(() => void (renders += 1));
      store.load(
        [
          { id: '1', record: { id: 1, name: 'Ann' } },
          { id: '2', record: undefined },
          { id: '3', record: { id: 3, name: 'Cy' } },
          { id: '4', record: undefined },
        ],
        at(1),
      );
      expect(store.completing).toBe(true);
      expect(store.getSnapshot()).toMatchObject({ records: [], lastUpdatedAt: null, status: 'loading' });
      expect(store.size).toBe(2);

      expect(store.apply(change('e1', 'UPDATED', 4, 'Di', at(2)))).toBe(true);
      expect(store.apply(change('e2', 'UPDATED', 1, 'Ann 2', at(3)))).toBe(true);
      expect(store.getSnapshot().records).toEqual([]);
      expect(renders).toBe(0);
      expect(store.apply(change('e3', 'UPDATED', 2, 'Bo', at(4)))).toBe(true);

      expect(store.completing).toBe(false);
      expect(store.getSnapshot()).toMatchObject({ records: [{ id: 1, name: 'Ann 2' }, { id: 2, name: 'Bo' }, { id: 3, name: 'Cy' }, { id: 4, name: 'Di' }], lastUpdatedAt: at(4) });
      expect(renders).toBe(1);
      expect(told).toEqual([]);
      expect(store.apply(change('e4', 'UPDATED', 2, 'Bo 2', at(5)))).toBe(true);
      expect(told).toEqual(['e4']);
    });

    it('drops a left-out row its first change takes out (LEFT, DELETED), and keeps what was shown before meanwhile', () => {
      const store = new LiveModelStore<Contact>();
      store.load([{ id: '9', record: { id: 9, name: 'Old' } }], at(1));
      const shown = store.getSnapshot();
      store.setStatus('resyncing');
      store.load(
        [
          { id: '1', record: undefined },
          { id: '2', record: undefined },
          { id: '3', record: { id: 3, name: 'Cy' } },
        ],
        at(2),
      );
      expect(store.getSnapshot().records).toBe(shown.records);
      expect(store.getSnapshot().lastUpdatedAt).toBe(at(1));
      store.apply(change('e1', 'LEFT', 1, null, at(3)));
      store.apply(change('e2', 'DELETED', 2, 'Bo', at(4)));
      expect(store.getSnapshot().records).toEqual([{ id: 3, name: 'Cy' }]);
      expect(store.getSnapshot().lastUpdatedAt).toBe(at(4));
    });

    it('shows the snapshot without the left-out rows still missing when told to give up on them, and brings a later change of one as a change', () => {
      const store = new LiveModelStore<Contact>();
      const told: string[] = [];
      store.onChange((applied) => void told.push(applied.eventId));
      store.load(
        [
          { id: '1', record: { id: 1, name: 'Ann' } },
          { id: '2', record: undefined },
          { id: '3', record: undefined },
        ],
        at(1),
      );
      store.apply(change('e1', 'UPDATED', 3, 'Cy', at(2)));
      expect(store.getSnapshot().records).toEqual([]);

      store.showWithoutPending();
      expect(store.completing).toBe(false);
      expect(store.getSnapshot().records).toEqual([{ id: 1, name: 'Ann' }, { id: 3, name: 'Cy' }]);
      expect(told).toEqual([]);
      expect(store.apply(change('e2', 'UPDATED', 2, 'Bo', at(3)))).toBe(true);
      expect(told).toEqual(['e2']);
      expect(store.getSnapshot().records).toEqual([{ id: 1, name: 'Ann' }, { id: 3, name: 'Cy' }, { id: 2, name: 'Bo' }]);
    });

    it('forgets the places with a new login, and a new snapshot replaces one being completed', () => {
      const store = new LiveModelStore<Contact>();
      store.load([{ id: '1', record: undefined }], at(1));
      store.load([{ id: '2', record: { id: 2, name: 'Bo' } }], at(2));
      expect(store.completing).toBe(false);
      expect(store.getSnapshot().records).toEqual([{ id: 2, name: 'Bo' }]);
      store.load([{ id: '1', record: undefined }], at(3));
      store.reset();
      expect(store.completing).toBe(false);
      expect(store.getSnapshot().records).toEqual([]);
      expect(store.size).toBe(0);
    });
  });
});
