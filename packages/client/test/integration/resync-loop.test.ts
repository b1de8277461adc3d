/**
 * A server that answers RESYNC_REQUIRED to every position (a CDC source removed while its mappings
 * remain: `records` answers an empty model at a cursor `changes` always refuses). The client
 * refills once at once, then waits before each further refill — a growing backoff, never a tight
 * loop of head reads and `onResync` calls — and says so meanwhile. Against a scripted server; the
 * waits are recorded (`backoff-waits.ts`) and run at once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type TributaryClient } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { NEVER_MS, recordBackoffWaits } from '../helpers/backoff-waits.ts';
import { emptyRecords, startScriptedServer, type ScriptedServer } from '../helpers/scripted-server.ts';

/** Positions (`topicCursor`, `records`) are answered; every subscription from one is refused with RESYNC_REQUIRED. */
function refusingEveryPosition(): Promise<ScriptedServer> {
  return startScriptedServer((operation, reply) => {
    if (operation.query.includes('topicCursor')) reply.next({ topicCursor: 'head' });
    else if (operation.query.includes('records(')) reply.next(emptyRecords('snapshot'));
    else return reply.error('RESYNC_REQUIRED', 'Cursor from another history');
    reply.complete();
  });
}

function connect(url: string): TributaryClient {
  const client = createClient({ url, webSocketImpl: WebSocket, pingIntervalMs: NEVER_MS, connectTimeoutMs: NEVER_MS });
  onTestFinished(() => client.close());
  return client;
}

describe('RESYNC_REQUIRED again and again', () => {
  it('subscribeEvents refills at once the first time, then waits longer before each further refill, the state saying resyncing', async () => {
    const server = await refusingEveryPosition();
    const log: string[] = [];
    const client = connect(server.url);
    recordBackoffWaits({ atOnce: true, onWait: (ms) => log.push(`wait ${ms} (${client.state})`) });
    client.subscribeEvents('orders', { onEvent: () => {}, onResync: () => void log.push('onResync') });
    await waitFor(() => log.length >= 5, { message: 'three refills' });
    expect(log.slice(0, 5)).toEqual(['onResync', 'wait 990 (resyncing)', 'onResync', 'wait 1980 (resyncing)', 'onResync']);
  });

  it('a live model reads its snapshot again at once the first time, then waits longer before each further read, its status resyncing (not live)', async () => {
    const server = await refusingEveryPosition();
    const log: string[] = [];
    const client = connect(server.url);
    const model = client.liveModel('contacts');
    const snapshots = () => server.operations.filter((operation) => operation.query.includes('records(')).length;
    recordBackoffWaits({ atOnce: true, onWait: (ms) => log.push(`wait ${ms} (${model.status}, ${snapshots()} snapshots read)`) });
    await waitFor(() => log.length >= 2, { message: 'two waits' });
    // The first snapshot and the refill at once, then one more after each wait.
    expect(log.slice(0, 2)).toEqual(['wait 990 (resyncing, 2 snapshots read)', 'wait 1980 (resyncing, 3 snapshots read)']);
  });
});
