import { describe, expect, it } from 'vitest';
import { createGroupCommit } from '../../src/pipeline/coordination/group-commit.ts';

/** A write whose batches are seen and finished by the test. */
function controlledWrite() {
  const batches: { items: number[]; finish: (error?: Error) => void }[] = [];
  let arrived: (() => void) | undefined;
  const write = (items: readonly number[]) =>
    new Promise<number[]>((resolve, reject) => {
      batches.push({ items: [...items], finish: (error) => (error ? reject(error) : resolve(items.map((item) => item * 10))) });
      arrived?.();
    });
  const nextBatch = async (index: number) => {
    while (batches.length <= index) await new Promise<void>((resolve) => (arrived = resolve));
    return batches[index]!;
  };
  return { write, batches, nextBatch };
}

describe('group commit', () => {
  it('writes the submits of one tick as one batch, each caller getting its own result', async () => {
    const { write, nextBatch } = controlledWrite();
    const group = createGroupCommit({ write, maxBatch: 100 });
    const results = [group.submit(1), group.submit(2), group.submit(3)];
    const batch = await nextBatch(0);
    expect(batch.items).toEqual([1, 2, 3]);
    batch.finish();
    expect(await Promise.all(results)).toEqual([10, 20, 30]);
    expect(group.pending).toBe(0);
  });

  it('gathers what is submitted while a batch is written into the next one, in order', async () => {
    const { write, batches, nextBatch } = controlledWrite();
    const group = createGroupCommit({ write, maxBatch: 100 });
    const first = group.submit(1);
    const firstBatch = await nextBatch(0);
    const later = [group.submit(2), group.submit(3), group.submit(4)];
    // One batch at a time: nothing else is written until the first is done.
    await Promise.resolve();
    expect(batches).toHaveLength(1);
    expect(group.pending).toBe(4);
    firstBatch.finish();
    expect(await first).toBe(10);
    const secondBatch = await nextBatch(1);
    expect(secondBatch.items).toEqual([2, 3, 4]);
    secondBatch.finish();
    expect(await Promise.all(later)).toEqual([20, 30, 40]);
  });

  it('keeps a batch within maxBatch, the rest going with the next', async () => {
    const { write, nextBatch } = controlledWrite();
    const group = createGroupCommit({ write, maxBatch: 2 });
    const results = [1, 2, 3, 4, 5].map((item) => group.submit(item));
    (await nextBatch(0)).finish();
    (await nextBatch(1)).finish();
    const last = await nextBatch(2);
    expect(last.items).toEqual([5]);
    last.finish();
    expect(await Promise.all(results)).toEqual([10, 20, 30, 40, 50]);
  });

  it('fails every write of a failed batch, and goes on with the next', async () => {
    const { write, nextBatch } = controlledWrite();
    const group = createGroupCommit({ write, maxBatch: 100 });
    const failing = [group.submit(1), group.submit(2)];
    const firstBatch = await nextBatch(0);
    const after = group.submit(3);
    firstBatch.finish(new Error('connection lost'));
    for (const result of failing) await expect(result).rejects.toThrow('connection lost');
    (await nextBatch(1)).finish();
    expect(await after).toBe(30);
  });

  it('writes up to `concurrency` batches at once', async () => {
    const { write, batches, nextBatch } = controlledWrite();
    const group = createGroupCommit({ write, maxBatch: 1, concurrency: 2 });
    const results = [group.submit(1), group.submit(2), group.submit(3)];
    await nextBatch(1);
    await Promise.resolve();
    expect(batches.map((batch) => batch.items)).toEqual([[1], [2]]);
    batches[0]!.finish();
    (await nextBatch(2)).finish();
    batches[1]!.finish();
    expect(await Promise.all(results)).toEqual([10, 20, 30]);
  });

  it('refuses a write that answers with the wrong number of results', async () => {
    const group = createGroupCommit<number, number>({ write: () => Promise.resolve([1]), maxBatch: 10 });
    const both = [group.submit(1), group.submit(2)];
    for (const result of both) await expect(result).rejects.toThrow('2 items');
  });
});
