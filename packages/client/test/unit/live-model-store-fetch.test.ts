/**
 * The store's rows awaiting a fetch: a change that would bring in a row not held without the
 * columns Postgres did not send (`unchangedColumns`: unchanged TOAST values) never shows it
 * partial; the row comes whole when its fetch answers, with the changes that arrived meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { LiveModelStore, type AwaitedRow, type ModelChange } from '../../src/live-model-store.ts';

type Note = { readonly id: number; readonly status: string; readonly name: string; readonly notes?: string };

const at = (second: number) => `2026-01-01T00:00:0${second}.000Z`;

/** A change whose record lacks `notes` (left unchanged, not sent) unless it carries them. */
function change(eventId: string, operation: ModelChange['operation'], record: Note, second = 1): ModelChange<Note> {
  const unchangedColumns = operation === 'CREATED' || operation === 'UPDATED' ? (Object.hasOwn(record, 'notes') ? [] : ['notes']) : [];
  return { eventId, operation, id: String(record.id), record: operation === 'LEFT' ? null : record, unchangedColumns, cursor: `c-${eventId}`, lastUpdatedAt: at(second) } as ModelChange<Note>;
}

function storeWithListener(): { store: LiveModelStore<Note>; told: string[] } {
  const store = new LiveModelStore<Note>(undefined, undefined, ['status']);
  const told: string[] = [];
  store.onChange((applied) => void told.push(`${applied.operation} ${applied.eventId} ${JSON.stringify(applied.record)}`));
  store.load([], at(0));
  return { store, told };
}

function awaiting(store: LiveModelStore<Note>): AwaitedRow<Note>[] {
  return [...store.rowsToFetch()];
}

describe('live model store: rows fetched whole', () => {
  it('does not bring in a row an update lacking a column would bring into the filter: it awaits its fetch, and comes whole as that update, with later changes on top', () => {
    const { store, told } = storeWithListener();
    const before = store.getSnapshot();
    expect(store.adds(change('e1', 'UPDATED', { id: 1, status: 'active', name: 'Ann' }))).toBe(true);
    expect(store.apply(change('e1', 'UPDATED', { id: 1, status: 'active', name: 'Ann' }))).toBe(false);
    expect(store.getSnapshot()).toBe(before);
    expect(told).toEqual([]);
    // Counted against maxRecords while it waits: the fetch adds nothing more.
    expect(store.size).toBe(1);
    const [row] = awaiting(store);
    expect(row?.id).toBe('1');

    // Before the fetch went: in what it reads. After: on top of it.
    store.apply(change('e2', 'UPDATED', { id: 1, status: 'active', name: 'Ann 2' }, 2));
    store.fetching(row!);
    expect(awaiting(store)).toEqual([]);
    store.apply(change('e3', 'UPDATED', { id: 1, status: 'active', name: 'Ann 3' }, 3));
    expect(store.getSnapshot().records).toEqual([]);

    store.fetched(row!, { id: 1, status: 'active', name: 'Ann 2', notes: 'long' });
    expect(store.getSnapshot().records).toEqual([{ id: 1, status: 'active', name: 'Ann 3', notes: 'long' }]);
    expect(store.size).toBe(1);
    expect(told).toEqual([
      `UPDATED e1 ${JSON.stringify({ id: 1, status: 'active', name: 'Ann 2', notes: 'long' })}`,
      `UPDATED e3 ${JSON.stringify({ id: 1, status: 'active', name: 'Ann 3', notes: 'long' })}`,
    ]);
    // Held now: an update lacking the column is merged into it, as ever.
    store.apply(change('e4', 'UPDATED', { id: 1, status: 'active', name: 'Ann 4' }, 4));
    expect(store.getSnapshot().records).toEqual([{ id: 1, status: 'active', name: 'Ann 4', notes: 'long' }]);
  });

  it('brings nothing when the fetch finds no row, nor when a DELETED or LEFT came first; a change bringing the whole row makes the fetch moot', () => {
    const { store, told } = storeWithListener();
    // The CREATED of a key change lacks the column too.
    store.apply(change('e1', 'CREATED', { id: 11, status: 'active', name: 'Moved' }));
    store.apply(change('e2', 'CREATED', { id: 12, status: 'active', name: 'Gone' }));
    store.apply(change('e3', 'UPDATED', { id: 13, status: 'active', name: 'Out' }));
    store.apply(change('e4', 'UPDATED', { id: 14, status: 'active', name: 'Whole' }));
    const rows = awaiting(store);
    expect(rows.map((row) => row.id)).toEqual(['11', '12', '13', '14']);
    for (const row of rows) store.fetching(row);
    store.apply(change('e5', 'DELETED', { id: 12 } as Note, 2));
    store.apply(change('e6', 'LEFT', { id: 13 } as Note, 2));
    store.apply(change('e7', 'UPDATED', { id: 14, status: 'active', name: 'Whole 2', notes: 'short' }, 3));
    expect(store.getSnapshot().records).toEqual([{ id: 14, status: 'active', name: 'Whole 2', notes: 'short' }]);

    const [moved, gone, out, whole] = rows;
    store.fetched(moved!, undefined);
    store.fetched(gone!, { id: 12, status: 'active', name: 'Gone', notes: 'read before its delete' });
    store.fetched(out!, { id: 13, status: 'active', name: 'Out', notes: 'read before it left' });
    store.fetched(whole!, { id: 14, status: 'active', name: 'Whole', notes: 'older' });
    expect(store.getSnapshot().records).toEqual([{ id: 14, status: 'active', name: 'Whole 2', notes: 'short' }]);
    expect(store.size).toBe(1);
    expect(told).toEqual([`UPDATED e7 ${JSON.stringify({ id: 14, status: 'active', name: 'Whole 2', notes: 'short' })}`]);
  });

  it('reads a row again after a failed fetch (the changes since are in the new read), and drops every awaited row with a new snapshot or login', () => {
    const { store } = storeWithListener();
    store.apply(change('e1', 'UPDATED', { id: 1, status: 'active', name: 'Ann' }));
    const [first] = awaiting(store);
    store.fetching(first!);
    store.apply(change('e2', 'UPDATED', { id: 1, status: 'active', name: 'Ann 2' }, 2));
    store.refetch(first!);
    expect(awaiting(store)).toEqual([first]);
    store.fetching(first!);
    store.fetched(first!, { id: 1, status: 'active', name: 'Ann 2', notes: 'long' });
    expect(store.getSnapshot().records).toEqual([{ id: 1, status: 'active', name: 'Ann 2', notes: 'long' }]);

    store.apply(change('e3', 'CREATED', { id: 2, status: 'active', name: 'Bo' }, 3));
    const [second] = awaiting(store);
    store.load([{ id: '1', record: { id: 1, status: 'active', name: 'Ann 2', notes: 'long' } }], at(4));
    expect(awaiting(store)).toEqual([]);
    store.fetched(second!, { id: 2, status: 'active', name: 'Bo', notes: 'read before the snapshot' });
    expect(store.getSnapshot().records.map((record) => record.id)).toEqual([1]);

    store.apply(change('e4', 'CREATED', { id: 3, status: 'active', name: 'Cy' }, 5));
    store.reset();
    expect(awaiting(store)).toEqual([]);
    expect(store.size).toBe(0);
  });

  it('completes a snapshot whose left-out row came lacking a column with the fetched row, as the snapshot brings it (no change listener)', () => {
    const { store, told } = storeWithListener();
    store.load(
      [
        { id: '1', record: { id: 1, status: 'active', name: 'Ann', notes: 'a' } },
        { id: '2', record: undefined },
        { id: '3', record: undefined },
      ],
      at(1),
    );
    store.apply(change('e1', 'UPDATED', { id: 2, status: 'active', name: 'Bo' }, 2));
    // Even an update lacking the filtered column: the left-out row was in the filter, the fetch judges it.
    store.apply({ ...change('e2', 'UPDATED', { id: 3, name: 'Cy' } as Note, 2), unchangedColumns: ['status', 'notes'] });
    expect(store.completing).toBe(true);
    expect(store.size).toBe(3);
    const [bo, cy] = awaiting(store);
    store.fetched(bo!, { id: 2, status: 'active', name: 'Bo', notes: 'b' });
    expect(store.completing).toBe(true);
    store.fetched(cy!, undefined);
    expect(store.completing).toBe(false);
    expect(store.getSnapshot().records).toEqual([
      { id: 1, status: 'active', name: 'Ann', notes: 'a' },
      { id: 2, status: 'active', name: 'Bo', notes: 'b' },
    ]);
    expect(told).toEqual([]);
  });

  it('keeps a held row’s columns a CREATED lacks (a key moved back, a tenant moved in), as an update keeps them', () => {
    const { store } = storeWithListener();
    store.load([{ id: '1', record: { id: 1, status: 'active', name: 'Ann', notes: 'long' } }], at(1));
    store.apply(change('e1', 'CREATED', { id: 1, status: 'active', name: 'Ann 2' }, 2));
    expect(store.getSnapshot().records).toEqual([{ id: 1, status: 'active', name: 'Ann 2', notes: 'long' }]);
  });
});
