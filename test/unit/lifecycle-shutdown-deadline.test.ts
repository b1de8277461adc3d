import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createShutdownDeadline } from '../../src/start/shutdown-deadline.ts';
import { captureLogs } from '../helpers/tributary.ts';
import { deferred } from '../helpers/wait-for.ts';

describe('the shutdown deadline', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function deadlineOf(timeoutMs: number) {
    const logs = captureLogs();
    return { deadline: createShutdownDeadline(timeoutMs, createLogger({ level: 'debug', destination: logs })), logs };
  }

  it('gives a step what is left until its share of the time from the start, not a time of its own', async () => {
    const { deadline, logs } = deadlineOf(1000);
    deadline.start();
    vi.advanceTimersByTime(300);
    expect(deadline.msUntil(0.5)).toBe(200);
    const ended = vi.fn();
    const step = deadline.bounded('workers', 0.5, () => new Promise<void>(() => {})).then(ended);
    await vi.advanceTimersByTimeAsync(199);
    expect(ended).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    await step;
    expect(logs.lines.map((line) => [line.msg, line.step, line.ms])).toEqual([
      ['shutdown step cut: it took its share of SHUTDOWN_TIMEOUT_MS; stopping goes on without it', 'workers', 200],
    ]);
    // A later step whose share has passed already gets no time at all.
    expect(deadline.msUntil(0.4)).toBe(0);
  });

  it('returns as soon as the step ends, and passes its failure on while it has time', async () => {
    const { deadline, logs } = deadlineOf(1000);
    deadline.start();
    await deadline.bounded('pipeline', 0.9, () => Promise.resolve());
    expect(logs.lines).toMatchObject([{ msg: 'shutdown step done', step: 'pipeline', level: 20 }]);
    await expect(deadline.bounded('sync', 0.9, () => Promise.reject(new Error('flush failed')))).rejects.toThrow('flush failed');
  });

  it('logs the failure of a step that ends after it was cut, instead of throwing it nowhere', async () => {
    const { deadline, logs } = deadlineOf(100);
    deadline.start();
    const late = deferred<void>();
    const step = deadline.bounded('workers', 0.5, () => late.promise);
    await vi.advanceTimersByTimeAsync(50);
    await step;
    late.reject(new Error('gate close failed'));
    await vi.advanceTimersByTimeAsync(0);
    expect(logs.lines.at(-1)).toMatchObject({ msg: 'shutdown step failed after it was cut', step: 'workers', err: { message: 'gate close failed' } });
  });

  it('counts from the first start only', () => {
    const { deadline } = deadlineOf(1000);
    deadline.start();
    vi.advanceTimersByTime(600);
    deadline.start();
    expect(deadline.msUntil(1)).toBe(400);
  });
});
