/**
 * subscribeModel's waits between connections, against a scripted server: a server that answers
 * RESYNC_REQUIRED to every position is not asked again in a tight loop, and a connection that
 * delivered changes before it closed (a deploy's 1001, a token's 4419) does not make the next wait
 * longer. The waits are recorded (`backoff-waits.ts`) and run at once.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { subscribeModel, type SubscribeModelOptions } from '@tributary/client';
import { waitFor } from '../../../../test/helpers/wait-for.ts';
import { NEVER_MS, recordBackoffWaits } from '../helpers/backoff-waits.ts';
import { emptyRecords, startScriptedServer } from '../helpers/scripted-server.ts';

function subscribe(url: string, options: Pick<SubscribeModelOptions, 'onChange' | 'onResync'>): void {
  const subscription = subscribeModel({
    url,
    webSocketImpl: WebSocket,
    token: 'token',
    model: 'contacts',
    pingIntervalMs: NEVER_MS,
    connectTimeoutMs: NEVER_MS,
    onError: () => {},
    ...options,
  });
  onTestFinished(async () => {
    subscription.close();
    await subscription.closed;
  });
}

describe('subscribeModel: waits between connections', () => {
  it('refills at once after the first RESYNC_REQUIRED, then waits longer before each further one in a row', async () => {
    const server = await startScriptedServer((operation, reply) => {
      if (operation.query.includes('records(')) {
        reply.next(emptyRecords('position'));
        reply.complete();
      } else reply.error('RESYNC_REQUIRED', 'Cursor from another history');
    });
    const log: string[] = [];
    recordBackoffWaits({ atOnce: true, onWait: (ms) => log.push(`wait ${ms}`) });
    subscribe(server.url, { onChange: () => {}, onResync: () => void log.push('onResync') });
    await waitFor(() => log.length >= 6, { message: 'three refills' });
    expect(log.slice(0, 6)).toEqual(['onResync', 'wait 990', 'onResync', 'wait 1980', 'onResync', 'wait 3960']);
  });

  it('waits the first step only after each connection that delivered a change before it closed', async () => {
    let sent = 0;
    const server = await startScriptedServer((operation, reply) => {
      if (operation.query.includes('records(')) {
        reply.next(emptyRecords('position'));
        reply.complete();
        return;
      }
      // A healthy stream: a change, then the server goes away (a deploy).
      sent += 1;
      reply.next({ changes: { eventId: `e${sent}`, operation: 'CREATED', model: 'contacts', id: String(sent), record: { id: sent }, cursor: `c${sent}`, lastUpdatedAt: new Date().toISOString() } });
      reply.socket.close(1001, 'Going away');
    });
    const log: string[] = [];
    recordBackoffWaits({ atOnce: true, onWait: (ms) => log.push(`wait ${ms}`) });
    subscribe(server.url, { onChange: (change) => void log.push(`change ${change.eventId}`) });
    await waitFor(() => log.length >= 6, { message: 'three connections' });
    expect(log.slice(0, 6)).toEqual(['change e1', 'wait 990', 'change e2', 'wait 990', 'change e3', 'wait 990']);
  });
});
