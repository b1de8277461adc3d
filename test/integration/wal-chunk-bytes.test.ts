/**
 * The WAL reader's byte bounds, against a real Postgres: a transaction of large rows arrives in
 * chunks bounded by their size as well as by their count (`maxChunkBytes`), and the chunks handed to
 * `handle` and not yet handled are bounded by their size as well as by their transactions' count
 * (`maxPendingBytes`): past it the reader stops reading until they are handled, dropping nothing.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import type { TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createWalReader, type WalReaderOptions } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import { createTestDatabase, openTestClient, uniqueName } from '../helpers/services.ts';
import { deferred, waitFor, type Deferred } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const KiB = 1024;


/** A reader with a slot and publication of its own, stopped when the test ends; records the chunks by default. */
function openReader(url: string, options: Partial<WalReaderOptions> = {}) {
  const chunks: TransactionChunk[] = [];
  const connections = createSourceConnections(url);
  const reader = createWalReader({
    connections,
    logger,
    statusIntervalMs: 100,
    slotName: uniqueName('slot'),
    publicationName: uniqueName('pub'),
    handle: (chunk) => {
      chunks.push(chunk);
      return Promise.resolve();
    },
    ...options,
  });
  onTestFinished(async () => {
    await reader.stop();
    await connections.dispose();
  });
  return { reader, chunks };
}

const idsOf = (chunk: TransactionChunk): number[] => chunk.changes.map((change) => Number(change.new?.['id']));
/** What the chunk's rows hold: the length of their `body` text. */
const bodyBytes = (chunk: TransactionChunk): number => chunk.changes.reduce((sum, change) => sum + String(change.new?.['body']).length, 0);

describe('WAL reader byte bounds', () => {
  it('hands a transaction of large rows over in chunks within maxChunkBytes, a row larger than it alone, every row once and in order', async () => {
    const db = await createTestDatabase();
    const sql = await openTestClient(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY, body text)');
    const { reader, chunks } = openReader(db.url, { maxChunkBytes: 64 * KiB });
    await reader.start();

    // Twelve rows in one transaction, far below the 1,000 changes of a chunk: 20 KiB each, but the
    // seventh of 100 KiB, more than the bound on its own.
    const sizes = Array.from({ length: 12 }, (_, i) => (i === 6 ? 100 * KiB : 20 * KiB));
    await sql.query(`INSERT INTO items SELECT g, repeat('x', ($1::int[])[g]) FROM generate_series(1, $2::int) g`, [sizes, sizes.length]);
    await waitFor(() => chunks.some((chunk) => chunk.final), { message: 'the final chunk' });

    // A chunk takes rows while they fit in 64 KiB (three of 20 KiB and their few bytes of framing);
    // the large row goes alone.
    expect(chunks.map(idsOf)).toEqual([[1, 2, 3], [4, 5, 6], [7], [8, 9, 10], [11, 12]]);
    for (const chunk of chunks) if (chunk.changes.length > 1) expect(bodyBytes(chunk)).toBeLessThanOrEqual(64 * KiB);
    expect(chunks.map((chunk) => chunk.final)).toEqual([false, false, false, false, true]);
    expect(new Set(chunks.map((chunk) => `${chunk.xid}@${chunk.commitLsn}`)).size).toBe(1);
  });

  it('stops reading while the chunks handed over and not yet handled reach maxPendingBytes, and reads on as they are handled', async () => {
    const db = await createTestDatabase();
    const sql = await openTestClient(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY, body text)');
    const held: Deferred<void>[] = [];
    const ids: number[] = [];
    let inFlight = 0;
    let peak = 0;
    const { reader } = openReader(db.url, {
      maxPendingBytes: 64 * KiB,
      // Each transaction stays in the handler until the test lets it go.
      handle: (chunk) => {
        const bytes = bodyBytes(chunk);
        ids.push(...idsOf(chunk));
        inFlight += bytes;
        peak = Math.max(peak, inFlight);
        const done = deferred();
        held.push(done);
        return done.promise.then(() => {
          inFlight -= bytes;
        });
      },
    });
    await reader.start();

    // Six transactions of one 40 KiB row: far below the 256 transactions handed over at once.
    for (let id = 1; id <= 6; id += 1) await sql.query(`INSERT INTO items VALUES ($1, repeat('x', 40 * 1024))`, [id]);
    // The oldest is handled once a later one is in the handler beside it: the reader goes on
    // only as far as the bound lets it.
    for (let next = 0; !ids.includes(6); next += 1) {
      await waitFor(() => held.length - next >= 2 || ids.includes(6), { message: `two transactions in the handler after ${next} handled` });
      held[next]!.resolve();
    }
    for (const done of held) done.resolve();

    expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
    // Two at once (handing over goes on below the bound), never more than the bound and one more.
    expect(peak).toBe(2 * 40 * KiB);
    await waitFor(() => reader.status().lastAcknowledgedLsn !== null && inFlight === 0, { message: 'all handled' });
  });

  it('refuses a byte bound that is not a positive integer', async () => {
    const db = await createTestDatabase();
    const connections = createSourceConnections(db.url);
    onTestFinished(() => connections.dispose());
    const base = { connections, logger, slotName: uniqueName('slot'), publicationName: uniqueName('pub'), handle: () => Promise.resolve() };
    for (const option of ['maxChunkBytes', 'maxPendingBytes'] as const) {
      for (const value of [0, 1.5]) {
        expect(() => createWalReader({ ...base, [option]: value })).toThrow(
          expect.objectContaining({ code: ErrorCode.MISCONFIGURED, message: `${option} must be a positive integer, got ${value}` }),
        );
      }
    }
  });
});
