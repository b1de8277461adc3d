import { describe, expect, it } from 'vitest';
import { closeDisposition, INITIAL_STATUS, nextStatus, type ConnectionEvent, type ConnectionStatus } from '../../src/connection-state.ts';

function run(events: readonly ConnectionEvent[], from: ConnectionStatus = INITIAL_STATUS): string[] {
  const states: string[] = [];
  let status = from;
  for (const event of events) {
    status = nextStatus(status, event);
    states.push(status.state);
  }
  return states;
}

describe('connection states', () => {
  it('starts connecting, is connected once acknowledged, reconnects after a loss', () => {
    expect(INITIAL_STATUS.state).toBe('connecting');
    expect(run([{ type: 'lost', code: 1006 }, { type: 'acknowledged' }, { type: 'lost', code: 1001 }, { type: 'acknowledged' }])).toEqual([
      'reconnecting',
      'connected',
      'reconnecting',
      'connected',
    ]);
  });

  it('is resyncing while any subscription refetches its snapshot, connected again when the last is done', () => {
    expect(
      run([{ type: 'acknowledged' }, { type: 'resync-started' }, { type: 'resync-started' }, { type: 'resync-finished' }, { type: 'resync-finished' }]),
    ).toEqual(['connected', 'resyncing', 'resyncing', 'resyncing', 'connected']);
    // A socket lost during a resync: reconnecting; the resync still counts when the next one is acknowledged.
    expect(run([{ type: 'acknowledged' }, { type: 'resync-started' }, { type: 'lost', code: 1006 }, { type: 'acknowledged' }, { type: 'resync-finished' }])).toEqual([
      'connected',
      'resyncing',
      'reconnecting',
      'resyncing',
      'connected',
    ]);
  });

  it.each([4403, 4412, 4401])('stops in unauthorized on close %i until reconnect()', (code) => {
    expect(run([{ type: 'acknowledged' }, { type: 'lost', code }, { type: 'lost', code: 1006 }, { type: 'acknowledged' }, { type: 'online' }, { type: 'reconnect' }, { type: 'acknowledged' }])).toEqual([
      'connected',
      'unauthorized',
      'unauthorized',
      'unauthorized',
      'unauthorized',
      'connecting',
      'connected',
    ]);
  });

  it('is offline while the browser is, reconnecting when the network is back', () => {
    expect(run([{ type: 'offline' }, { type: 'online' }, { type: 'acknowledged' }])).toEqual(['offline', 'reconnecting', 'connected']);
  });

  it('stays closed whatever happens after close()', () => {
    expect(run([{ type: 'acknowledged' }, { type: 'close' }, { type: 'acknowledged' }, { type: 'reconnect' }, { type: 'lost', code: 1006 }])).toEqual([
      'connected',
      'closed',
      'closed',
      'closed',
      'closed',
    ]);
  });

  it('reads close codes: fatal auth, expiry (a new token at once), everything else retried', () => {
    expect([4403, 4412, 4401].map(closeDisposition)).toEqual(['unauthorized', 'unauthorized', 'unauthorized']);
    expect(closeDisposition(4419)).toBe('new-token');
    expect([1000, 1001, 1006, 1013, 4008, 4499, 4500, 4408].map(closeDisposition)).toEqual(Array.from({ length: 8 }, () => 'retry'));
  });
});
