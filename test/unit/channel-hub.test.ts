import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createChannelHub, type ChannelMessage } from '../../src/pipeline/channels/channel-hub.ts';
import type { Scope } from '../../src/pipeline/scope.ts';

const SCOPE: Scope = { app: 'shop', env: 'prod', tenant: 't1' };

function message(n: number): ChannelMessage {
  return { channel: 'room', event: 'say', data: n };
}

function setUp(memberQueueCapacity: number) {
  const metrics = createMetrics({ processMetrics: false });
  const hub = createChannelHub({ memberQueueCapacity, metrics });
  const overflowCount = async () => (await metrics.channelMemberOverflows.get()).values[0]?.value ?? 0;
  return { hub, overflowCount };
}

describe('channel hub', () => {
  it('overflow policy: a member that falls behind gets what was queued, then RATE_LIMITED, leaves, and is counted — the others keep receiving', async () => {
    const { hub, overflowCount } = setUp(2);
    const slow = await hub.join(SCOPE, 'room');
    const reading = await hub.join(SCOPE, 'room');
    const read: unknown[] = [];
    const consumed = (async () => {
      for await (const received of reading) {
        read.push(received.data);
        if (read.length === 4) return;
      }
    })();
    expect(hub.memberCount()).toBe(2);

    for (let n = 1; n <= 4; n += 1) await hub.broadcast(SCOPE, message(n));
    await consumed;
    expect(read).toEqual([1, 2, 3, 4]);

    expect(await slow.next()).toEqual({ value: message(1), done: false });
    expect(await slow.next()).toEqual({ value: message(2), done: false });
    await expect(slow.next()).rejects.toMatchObject({ code: ErrorCode.RATE_LIMITED });
    expect(await overflowCount()).toBe(1);
    expect(hub.memberCount()).toBe(0); // the reader returned after 4, the slow one was failed
  });

  it('counts nothing for members that keep up', async () => {
    const { hub, overflowCount } = setUp(2);
    const member = await hub.join(SCOPE, 'room');
    for (let n = 1; n <= 6; n += 1) {
      await hub.broadcast(SCOPE, message(n));
      expect(await member.next()).toEqual({ value: message(n), done: false });
    }
    expect(await overflowCount()).toBe(0);
  });

  it('delivers a broadcast only to members of the same channel in the same scope', async () => {
    const { hub } = setUp(10);
    const t2: Scope = { ...SCOPE, tenant: 't2' };
    const member = await hub.join(SCOPE, 'room');
    const otherTenant = await hub.join(t2, 'room');
    const otherRoom = await hub.join(SCOPE, 'hall');
    await hub.broadcast(SCOPE, message(1));
    await hub.broadcast(t2, message(2));
    await hub.broadcast(SCOPE, { channel: 'hall', event: 'say', data: 3 });
    // Barrier: a marker each member must receive after its own message; anything from another
    // scope or channel would arrive before it.
    const marker = (channel: string): ChannelMessage => ({ channel, event: 'marker', data: null });
    await hub.broadcast(SCOPE, marker('room'));
    await hub.broadcast(t2, marker('room'));
    await hub.broadcast(SCOPE, marker('hall'));
    const take2 = async (member: AsyncIterableIterator<ChannelMessage>): Promise<unknown[]> => {
      const first: IteratorResult<ChannelMessage, unknown> = await member.next();
      const second: IteratorResult<ChannelMessage, unknown> = await member.next();
      return [first.value, second.value];
    };
    expect(await take2(member)).toEqual([message(1), marker('room')]);
    expect(await take2(otherTenant)).toEqual([message(2), marker('room')]);
    expect(await take2(otherRoom)).toEqual([{ channel: 'hall', event: 'say', data: 3 }, marker('hall')]);
  });
});
