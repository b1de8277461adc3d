import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { createBoundedQueue } from '../../src/pipeline/bounded-queue.ts';

function queueWithCloses(capacity: number) {
  let closes = 0;
  const queue = createBoundedQueue<number>({ capacity, onClose: () => (closes += 1) });
  return { queue, closes: () => closes };
}

describe('bounded queue', () => {
  it('hands items to the consumer in push order', async () => {
    const { queue } = queueWithCloses(10);
    expect([queue.push(1), queue.push(2), queue.push(3)]).toEqual(['accepted', 'accepted', 'accepted']);
    expect([await queue.next(), await queue.next(), await queue.next()]).toEqual([
      { value: 1, done: false },
      { value: 2, done: false },
      { value: 3, done: false },
    ]);
  });

  it('hands an item straight to a waiting consumer, without taking room', async () => {
    const { queue } = queueWithCloses(1);
    const waiting = queue.next();
    expect(queue.push(1)).toBe('accepted');
    expect(await waiting).toEqual({ value: 1, done: false });
    expect(queue.push(2)).toBe('accepted');
    expect(queue.push(3)).toBe('overflowed');
  });

  it('overflow policy: the push past the bound reports it once, the consumer gets what was queued and then RATE_LIMITED, and nothing more is taken', async () => {
    const { queue, closes } = queueWithCloses(2);
    expect([queue.push(1), queue.push(2), queue.push(3), queue.push(4)]).toEqual(['accepted', 'accepted', 'overflowed', 'closed']);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    await expect(queue.next()).rejects.toMatchObject({ code: ErrorCode.RATE_LIMITED });
    expect(closes()).toBe(1);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    expect(closes()).toBe(1);
  });

  it('close ends the iteration after the items already queued', async () => {
    const { queue, closes } = queueWithCloses(5);
    queue.push(1);
    queue.close();
    expect(queue.push(2)).toBe('closed');
    const seen: number[] = [];
    for await (const item of queue) seen.push(item);
    expect(seen).toEqual([1]);
    expect(closes()).toBe(1);
  });

  it('close ends a consumer waiting on an empty queue', async () => {
    const { queue, closes } = queueWithCloses(5);
    const waiting = queue.next();
    queue.close();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(closes()).toBe(1);
  });

  it('return stops the consumer at once, dropping what was queued, and closes once', async () => {
    const { queue, closes } = queueWithCloses(5);
    queue.push(1);
    queue.push(2);
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    expect(queue.push(3)).toBe('closed');
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    expect(closes()).toBe(1);
  });

  it('return releases a consumer waiting for the next item', async () => {
    const { queue } = queueWithCloses(5);
    const waiting = queue.next();
    await queue.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
  });
});
