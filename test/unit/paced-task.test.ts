import { describe, expect, it } from 'vitest';
import { pacedTask } from '../../src/pipeline/coordination/paced-task.ts';

/** A clock the test moves, and a task that takes `took` ms of it per run. */
function harness(took: () => number) {
  let clock = 0;
  let runs = 0;
  const task = pacedTask(
    () => {
      runs += 1;
      clock += took();
      return Promise.resolve(runs);
    },
    { restFactor: 20, now: () => clock },
  );
  return {
    task,
    runs: () => runs,
    advance: (ms: number) => (clock += ms),
  };
}

describe('paced task', () => {
  it('runs at every call while its runs take no time', async () => {
    const paced = harness(() => 0);
    expect([await paced.task(), await paced.task(), await paced.task()]).toEqual([1, 2, 3]);
  });

  it('rests twenty times as long as its last run took, and runs again once that is over', async () => {
    let took = 100;
    const paced = harness(() => took);
    expect(await paced.task()).toBe(1);
    // Rests until 100 + 20 · 100 = 2,100 ms.
    paced.advance(1_999);
    expect(await paced.task()).toBeUndefined();
    expect(paced.runs()).toBe(1);
    paced.advance(1);
    took = 10;
    expect(await paced.task()).toBe(2);
    // A shorter run, a shorter rest: 200 ms after it ended.
    paced.advance(199);
    expect(await paced.task()).toBeUndefined();
    paced.advance(1);
    expect(await paced.task()).toBe(3);
  });

  it('rests after a failed run as after any other, and passes the failure on', async () => {
    let clock = 0;
    let calls = 0;
    const task = pacedTask(
      () => {
        calls += 1;
        clock += 50;
        return Promise.reject(new Error('count failed'));
      },
      { restFactor: 20, now: () => clock },
    );
    await expect(task()).rejects.toThrow('count failed');
    clock += 999;
    expect(await task()).toBeUndefined();
    expect(calls).toBe(1);
    clock += 1;
    await expect(task()).rejects.toThrow('count failed');
    expect(calls).toBe(2);
  });
});
