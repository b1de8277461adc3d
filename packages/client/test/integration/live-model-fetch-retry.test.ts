/**
 * A live model's read of a whole row (a change brought it in without its TOASTed values) that
 * fails is not answered with the partial row: the stream ends with the error, is waited out on
 * the model's backoff (`reconnecting`, the error shown, the client's onError told) and the next
 * run reads the row again. One a retry would meet again stops the model (`error`). Against a
 * scripted server, which can refuse the read on demand.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type LiveModelStatus, type ModelRecord, type TributaryRequestError } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { emptyRecords, startScriptedServer, type Operation, type Reply } from '../helpers/scripted-server.ts';

type Contact = ModelRecord & { readonly id: number; readonly status: string; readonly notes?: string };

/** The row's change as the server sends it: moved into the filter, `notes` left unchanged (not sent). */
const ENTERED = { eventId: 'evt_1', operation: 'UPDATED', model: 'contacts', id: '7', record: { id: 7, status: 'active' }, unchangedColumns: ['notes'], cursor: 'c1', lastUpdatedAt: '2026-01-01T00:00:01.000Z' };
const WHOLE = { id: 7, status: 'active', notes: 'x'.repeat(3000) };

/** A scripted server: the snapshot is empty, the stream brings ENTERED once, and `read` answers each read of row 7. */
async function serve(read: (reply: Reply, attempt: number) => void): Promise<{ url: string; reads: Operation[] }> {
  const reads: Operation[] = [];
  const server = await startScriptedServer((operation, reply) => {
    if (operation.query.includes('records(')) {
      if (Array.isArray(operation.variables['ids'])) {
        reads.push(operation);
        return read(reply, reads.length);
      }
      reply.next(emptyRecords('s'));
      return reply.complete();
    }
    if (operation.query.includes('changes(') && server.operations.filter((each) => each.query.includes('changes(')).length === 1) reply.next({ changes: ENTERED });
  });
  return { url: server.url, reads };
}

function page(nodes: readonly { id: string; record: unknown }[]): unknown {
  return { records: { cursor: 's', nodes, pending: [], pageInfo: { endCursor: null, hasNextPage: false }, readAt: '2026-01-01T00:00:02.000Z' } };
}

describe('a live model whose read of a whole row fails', () => {
  it('waits it out on its backoff, reconnecting with the error, and holds the row whole once a read answers — never partial', async () => {
    const { url, reads } = await serve((reply, attempt) => {
      if (attempt === 1) return reply.error('UNAVAILABLE', "The model's source database cannot be reached right now; retry shortly");
      reply.next(page([{ id: '7', record: WHOLE }]));
      reply.complete();
    });
    const failures: unknown[] = [];
    const client = createClient({ url, webSocketImpl: WebSocket, onError: (error) => void failures.push(error) });
    onTestFinished(() => client.close());
    const model = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active' } });
    const statuses: LiveModelStatus[] = [];
    const partial: string[] = [];
    model.subscribe(() => {
      const { status, records } = model.getSnapshot();
      if (statuses.at(-1) !== status) statuses.push(status);
      for (const record of records) if (record.notes === undefined) partial.push(JSON.stringify(record));
    });

    await waitFor(() => model.records.length === 1, { message: 'the row, read again' });
    expect(model.records).toEqual([WHOLE]);
    // By the change's id, under the model's filter as it is: no key guessed from the record.
    expect(reads.map((read) => [read.variables['ids'], read.variables['filter']])).toEqual([
      [['7'], { status: 'eq.active' }],
      [['7'], { status: 'eq.active' }],
    ]);
    expect(statuses).toContain('reconnecting');
    expect((failures[0] as TributaryRequestError | undefined)?.code).toBe('UNAVAILABLE');
    expect(partial).toEqual([]);
    await waitFor(() => model.isLive, { message: 'live again' });
    expect(model.error).toBeNull();
  });

  it('stops (error) on a refusal a retry would meet again, without the row', async () => {
    const { url, reads } = await serve((reply) => reply.error('BAD_USER_INPUT', 'Invalid filter'));
    const client = createClient({ url, webSocketImpl: WebSocket });
    onTestFinished(() => client.close());
    const model = client.liveModel<Contact>('contacts', { filter: { status: 'eq.active' } });
    await waitFor(() => model.status === 'error', { message: 'stopped' });
    expect((model.error as TributaryRequestError | null)?.code).toBe('BAD_USER_INPUT');
    expect(model.records).toEqual([]);
    expect(reads).toHaveLength(1);
  });
});
