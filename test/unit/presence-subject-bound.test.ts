/**
 * The memory presence store's bound per subject: one user (a subject within its scope) is listed
 * in at most `maxPerSubject` channels of an instance, so that it cannot take every place the
 * instance lists (`maxPerInstance`, shared by all tenants). A member past it is not listed.
 */
import { describe, expect, it } from 'vitest';
import { channelKey, type ChannelMessage } from '../../src/pipeline/channels/channel-message.ts';
import { createMemoryPresence, type PresenceBounds } from '../../src/pipeline/channels/presence.ts';
import type { Scope } from '../../src/pipeline/scope.ts';

const M: Scope = { app: 'shop', env: 'prod', tenant: 'tenant-m' };
const V: Scope = { app: 'shop', env: 'prod', tenant: 'tenant-v' };
const member = (subject: string) => ({ subject, connectionId: `conn-${subject}` });

function setUp(bounds: PresenceBounds = {}) {
  const announced: ChannelMessage[] = [];
  const presence = createMemoryPresence({ ...bounds, announce: (_key, message) => Promise.resolve(void announced.push(message)) });
  return { presence, announced };
}

describe('memory presence: members per subject', () => {
  it('lists one subject in at most 100 channels by default; the 101st is not listed nor announced, another subject (or the same one in another scope) still is; a removal gives the place back', async () => {
    const { presence, announced } = setUp();
    const first = await presence.add(channelKey(M, 'spam.c0'), member('mallory'));
    expect(first).toBeDefined();
    for (let n = 1; n < 100; n += 1) expect(await presence.add(channelKey(M, `spam.c${n}`), member('mallory'))).toBeDefined();

    expect(await presence.add(channelKey(M, 'spam.c100'), member('mallory'))).toBeUndefined();
    expect(await presence.add(channelKey(M, 'spam.c100'), member('victor'))).toMatchObject({ subject: 'victor' });
    expect(await presence.add(channelKey(V, 'spam.c100'), member('mallory'))).toMatchObject({ subject: 'mallory' });
    expect(await presence.list(channelKey(M, 'spam.c100'), 10)).toMatchObject({ count: 1, members: [{ subject: 'victor' }] });
    expect(announced.filter((message) => message.channel === 'spam.c100').map((message) => `${message.event} ${(message.data as { subject: string }).subject}`)).toEqual([
      'presence.joined victor',
      'presence.joined mallory', // tenant-v's mallory
    ]);

    await presence.remove(channelKey(M, 'spam.c0'), first!);
    expect(await presence.add(channelKey(M, 'spam.c100'), member('mallory'))).toMatchObject({ subject: 'mallory' });
    expect(await presence.add(channelKey(M, 'spam.c101'), member('mallory'))).toBeUndefined();
  });

  it('counts only the members it lists (one refused by a full channel takes no place), and close gives every place back', async () => {
    const { presence } = setUp({ maxPerChannel: 1, maxPerSubject: 2 });
    expect(await presence.add(channelKey(M, 'full'), member('victor'))).toBeDefined();
    expect(await presence.add(channelKey(M, 'full'), member('mallory'))).toBeUndefined();
    expect(await presence.add(channelKey(M, 'a'), member('mallory'))).toBeDefined();
    expect(await presence.add(channelKey(M, 'b'), member('mallory'))).toBeDefined();
    expect(await presence.add(channelKey(M, 'c'), member('mallory'))).toBeUndefined();

    await presence.close();
    expect(await presence.add(channelKey(M, 'c'), member('mallory'))).toBeDefined();
    expect(await presence.add(channelKey(M, 'd'), member('mallory'))).toBeDefined();
  });
});
