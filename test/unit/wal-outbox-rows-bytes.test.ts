/**
 * The WAL outbox's rows held until their transaction's end are bounded by their size as well as by
 * their count: past the byte bound the oldest held row is routed at once, as it stands, as past
 * the count bound.
 */
import { describe, expect, it } from 'vitest';
import type { RowChange, RowImage, TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { HELD_BYTES_LIMIT, HELD_ROWS_LIMIT, createTransactionRows, imageBytes } from '../../src/pipeline/cdc/wal-outbox-rows.ts';

const KiB = 1024;
const outbox = { schema: 'public', name: 'outbox' };
const isOutbox = (table: { schema: string; name: string }) => table.schema === outbox.schema && table.name === outbox.name;

const row = (id: number, payloadBytes: number): RowImage => ({ id, topic: 't', payload: { text: 'x'.repeat(payloadBytes) } });
const change = (operation: RowChange['operation'], image: RowImage): RowChange => ({
  operation,
  table: outbox,
  keyColumns: ['id'],
  new: operation === 'delete' ? undefined : image,
  old: operation === 'insert' ? undefined : { id: image['id'] },
  unchangedToastColumns: [],
  lsn: '00000000/00001000',
  lsnIndex: 0,
});
const chunkOf = (changes: RowChange[], final: boolean): TransactionChunk => ({ xid: 7, commitLsn: '00000000/00009000', commitTime: new Date(0), changes, final });
const ids = (rows: readonly RowImage[]) => rows.map((image) => image['id']);

describe('WAL outbox rows held by size', () => {
  it('routes the oldest held row at once once the rows held pass the byte bound, far below the count bound', () => {
    const rows = createTransactionRows(HELD_ROWS_LIMIT, 100 * KiB);
    // Five rows of 40 KiB: from the third on, the rows held pass 100 KiB, and the oldest goes.
    const first = rows.fold(chunkOf([1, 2, 3, 4, 5].map((id) => change('insert', row(id, 40 * KiB))), false), isOutbox);
    expect(ids(first.rows)).toEqual([1, 2, 3]);
    expect(first).toMatchObject({ early: 3, firstEarly: true });

    // Row 1 was routed as it stood: its UPDATE is not seen. Row 5, held, takes its UPDATE; row 4 is deleted.
    const last = rows.fold(chunkOf([change('update', { ...row(1, 10), topic: 'late' }), change('update', { ...row(5, 10), topic: 'late' }), change('delete', row(4, 0))], true), isOutbox);
    expect(last.rows).toEqual([{ ...row(5, 10), topic: 'late' }]);
    expect(last).toMatchObject({ early: 0, firstEarly: false });
  });

  it('routes early when an UPDATE makes the rows held pass the byte bound, and holds a single row larger than it until the end', () => {
    const rows = createTransactionRows(HELD_ROWS_LIMIT, 100 * KiB);
    const small = rows.fold(chunkOf([change('insert', row(1, 10)), change('insert', row(2, 10))], false), isOutbox);
    expect(small.rows).toEqual([]);
    // Row 2 filled in with 150 KiB: row 1, the oldest, goes; row 2 alone stays held, folded to the end.
    const grown = rows.fold(chunkOf([change('update', row(2, 150 * KiB))], false), isOutbox);
    expect(ids(grown.rows)).toEqual([1]);
    expect(grown).toMatchObject({ early: 1, firstEarly: true });
    const last = rows.fold(chunkOf([change('update', { ...row(2, 150 * KiB), topic: 'last' })], true), isOutbox);
    expect(last.rows).toEqual([{ ...row(2, 150 * KiB), topic: 'last' }]);
  });

  it('holds one default chunk of the reader by default, and counts text, bytes and JSON by their size', () => {
    expect(HELD_BYTES_LIMIT).toBe(16 * 1024 * KiB);
    const image = { id: '12', payload: { list: ['abcd', 1, null], deep: { x: 'y'.repeat(1000) } }, data: Buffer.alloc(500) };
    const bytes = imageBytes(image);
    // The text and bytes themselves, plus a few bytes for each key and scalar: not their JSON, not less.
    expect(bytes).toBeGreaterThanOrEqual(2 + 4 + 1000 + 500);
    expect(bytes).toBeLessThan(2 + 4 + 1000 + 500 + 200);
    // A payload nested deeper than a recursive walk could go is measured too.
    let deep: unknown = 'z';
    for (let i = 0; i < 100_000; i += 1) deep = [deep];
    expect(imageBytes({ payload: deep })).toBeGreaterThan(100_000);
  });
});
