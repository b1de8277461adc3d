/**
 * The Redis presence store against a real Redis: its bounds (members per channel, per instance,
 * per subject), and an instance taken for dead while alive (its heartbeats did not reach Redis, another swept
 * it) listing its members again at its next heartbeat, announced as joined again.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { ChannelMessage } from '../../src/pipeline/channels/channel-message.ts';
import type { PresenceBounds } from '../../src/pipeline/channels/presence.ts';
import { createRedisPresence } from '../../src/pipeline/channels/redis-presence.ts';
import { testRedisUrl, uniquePrefix, waitFor } from '../helpers/index.ts';

function setUp(bounds: PresenceBounds = {}, keyPrefix = uniquePrefix()) {
  const redis = new Redis(testRedisUrl());
  const announced: { key: string; message: ChannelMessage }[] = [];
  const presence = createRedisPresence({
    redis,
    keyPrefix,
    heartbeatMs: 100,
    announce: (key, message) => Promise.resolve(void announced.push({ key, message })),
    logger: createLogger({ level: 'silent' }),
    ...bounds,
  });
  onTestFinished(async () => {
    await presence.close();
    await redis.quit();
  });
  return { redis, keyPrefix, presence, announced };
}

const member = (subject: string) => ({ subject, connectionId: `conn-${subject}` });

describe('redis presence store', () => {
  it('lists at most maxPerChannel members of a channel and maxPerInstance of an instance; one past a bound is not listed nor announced', async () => {
    const { presence, announced } = setUp({ maxPerChannel: 2, maxPerInstance: 3 });
    expect(await presence.add('app:env:|room', member('a'))).toMatchObject({ subject: 'a' });
    expect(await presence.add('app:env:|room', member('b'))).toMatchObject({ subject: 'b' });
    expect(await presence.add('app:env:|room', member('c'))).toBeUndefined();
    expect(await presence.add('app:env:|hall', member('d'))).toMatchObject({ subject: 'd' });
    expect(await presence.add('app:env:|yard', member('e'))).toBeUndefined();

    const room = await presence.list('app:env:|room', 10);
    expect(room.count).toBe(2);
    expect(room.members.map((listed) => listed.subject)).toEqual(['a', 'b']);
    expect(announced.map(({ message }) => `${message.channel} ${message.event}`)).toEqual(['room presence.joined', 'room presence.joined', 'hall presence.joined']);
  });

  it('lists its members again under a new name when it finds itself swept, announcing those the sweep took as joined', async () => {
    const { redis, keyPrefix, presence, announced } = setUp();
    const listed = await presence.add('app:env:|room', member('a'));
    expect(listed).toBeDefined();
    const [instance] = await redis.zrange(`${keyPrefix}presence:instances`, 0, -1);

    // What another instance's sweep does to one it took for dead.
    await redis.multi().zrem(`${keyPrefix}presence:instances`, instance!).hdel(`${keyPrefix}{app:env:|room}:presence`, listed!.id).del(`${keyPrefix}presence:instance:${instance!}`).exec();
    expect((await presence.list('app:env:|room', 10)).count).toBe(0);

    await waitFor(() => announced.length === 2, { message: 'the member was announced again' });
    expect(announced[1]?.message).toMatchObject({ channel: 'room', event: 'presence.joined', data: { id: listed!.id, subject: 'a' } });
    expect(await presence.list('app:env:|room', 10)).toMatchObject({ count: 1, members: [{ id: listed!.id, subject: 'a' }] });
    const instances = await redis.zrange(`${keyPrefix}presence:instances`, 0, -1);
    expect(instances).toHaveLength(1);
    expect(instances[0]).not.toBe(instance);

    // Leaving afterwards takes it off under the new name.
    await presence.remove('app:env:|room', listed!);
    expect((await presence.list('app:env:|room', 10)).count).toBe(0);
    expect(await redis.scard(`${keyPrefix}presence:instance:${instances[0]!}`)).toBe(0);
  });

  it('lists one subject (within its scope) in at most 100 channels of an instance by default; another subject still is listed; a removal gives the place back', async () => {
    const { presence, announced } = setUp();
    const first = await presence.add('app:env:t=m|c0', member('mallory'));
    expect(first).toBeDefined();
    for (let n = 1; n < 100; n += 1) expect(await presence.add(`app:env:t=m|c${n}`, member('mallory'))).toBeDefined();

    expect(await presence.add('app:env:t=m|c100', member('mallory'))).toBeUndefined();
    expect(await presence.add('app:env:t=m|c100', member('victor'))).toMatchObject({ subject: 'victor' });
    expect(await presence.add('app:env:t=v|c100', member('mallory'))).toMatchObject({ subject: 'mallory' });
    expect(await presence.list('app:env:t=m|c100', 10)).toMatchObject({ count: 1, members: [{ subject: 'victor' }] });
    expect(announced.filter(({ key }) => key === 'app:env:t=m|c100').map(({ message }) => message.event)).toEqual(['presence.joined']);

    await presence.remove('app:env:t=m|c0', first!);
    expect(await presence.add('app:env:t=m|c100', member('mallory'))).toMatchObject({ subject: 'mallory' });
    expect(await presence.add('app:env:t=m|c101', member('mallory'))).toBeUndefined();
  });

  it('gives a subject its place back when a member refused by a full channel, or not listed again after a sweep, is not listed', async () => {
    const { redis, keyPrefix, presence } = setUp({ maxPerChannel: 1, maxPerSubject: 1 });
    const other = setUp({ maxPerChannel: 1 }, keyPrefix);
    expect(await other.presence.add('app:env:|full', member('victor'))).toBeDefined();
    expect(await presence.add('app:env:|full', member('mallory'))).toBeUndefined();
    const listed = await presence.add('app:env:|room', member('mallory'));
    expect(listed).toBeDefined();
    expect(await presence.add('app:env:|hall', member('mallory'))).toBeUndefined();

    // Swept as if dead; victor takes the room's only place before this instance lists mallory again.
    const instance = (await redis.hget(`${keyPrefix}{app:env:|room}:presence`, listed!.id))!.split(' ')[0]!;
    await redis.multi().zrem(`${keyPrefix}presence:instances`, instance).hdel(`${keyPrefix}{app:env:|room}:presence`, listed!.id).del(`${keyPrefix}presence:instance:${instance}`).exec();
    expect(await other.presence.add('app:env:|room', member('victor'))).toBeDefined();

    await waitFor(async () => (await presence.add('app:env:|hall', member('mallory'))) !== undefined, { message: 'mallory was listed in the hall once the room refused it again' });
    expect(await presence.list('app:env:|room', 10)).toMatchObject({ count: 1, members: [{ subject: 'victor' }] });
  });
});
