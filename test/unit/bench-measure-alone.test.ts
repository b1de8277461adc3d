import { readFile } from 'node:fs/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { distinctFanoutSubscription } from '../../bench/lib/fanout-payload.ts';
import { startPeerProcess, type PeerProcess } from '../../bench/lib/peer-process.ts';
import type { PeerName } from '../../bench/peers/peer.ts';
import { measureAlone, openSession, type FanoutSession } from '../../bench/workloads/fanout-session.ts';

const SUBSCRIBERS = 5;
const TOLERANCE = { minDrainMs: 100, drainFraction: 0.1, collectTimeoutMs: 5000 };

/** The state letter of /proc/<pid>/stat: `T` for a process stopped by a signal. */
async function processState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
}

async function peerWithSession(name: PeerName, options: Partial<Parameters<typeof openSession>[0]> = {}): Promise<{ peer: PeerProcess; session: FanoutSession }> {
  const peer = await startPeerProcess(name, { startTimeoutMs: 60_000 });
  onTestFinished(() => peer.stop());
  const session = await openSession({ peer, subscribers: SUBSCRIBERS, redis: undefined, frameCheck: 'fanout-event', ...options });
  onTestFinished(() => session.stop());
  return { peer, session };
}

describe('bench fan-out sessions', () => {
  it('runs a step with only the measured server up: the other server is stopped (SIGSTOP) meanwhile, and resumes for its own', { timeout: 120_000 }, async () => {
    const a = await peerWithSession('raw-ws');
    const b = await peerWithSession('raw-ws');
    const group = [a.session, b.session];

    const states = await measureAlone(group, a.session, 1000, async (session) => {
      const result = await session.step({ rate: 20, count: 5, ordered: true, tolerance: TOLERANCE });
      return { result, a: await processState(a.peer.pid), b: await processState(b.peer.pid) };
    });
    expect(states.b).toBe('T');
    expect(states.a).not.toBe('T');
    expect(states.result.lossless).toBe(true);

    const second = await measureAlone(group, b.session, 1000, async (session) => {
      const result = await session.step({ rate: 20, count: 5, ordered: true, tolerance: TOLERANCE });
      return { result, a: await processState(a.peer.pid), b: await processState(b.peer.pid) };
    });
    expect([second.a, second.b]).toEqual(['T', expect.not.stringMatching(/^T$/)]);
    // Nothing was lost to the pause: every subscriber of b got every event.
    expect(second.result.lossless).toBe(true);
  });

  it('delivers every event, in the expected frame, to subscribers that each send their own operation and where filter (plain graphql-ws)', { timeout: 120_000 }, async () => {
    const { session } = await peerWithSession('plain-graphql-ws', {
      subscription: Array.from({ length: SUBSCRIBERS }, (_, index) => distinctFanoutSubscription(index)),
    });
    const result = await session.step({ rate: 20, count: 5, ordered: true, tolerance: TOLERANCE });
    expect(result.client).toMatchObject({ complete: SUBSCRIBERS, mismatched: 0, received: SUBSCRIBERS * 5 });
    expect(result.client.checked).toBeGreaterThan(0);
  });
});
