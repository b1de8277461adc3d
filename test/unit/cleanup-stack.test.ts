import { describe, expect, it } from 'vitest';
import { createCleanupStack } from '../../src/cleanup-stack.ts';
import { createLogger } from '../../src/logger.ts';
import { deferred } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

describe('cleanup stack', () => {
  it('runs its steps in reverse order, each even when an earlier one fails, once', async () => {
    const stack = createCleanupStack(logger);
    const ran: string[] = [];
    stack.push('first', () => Promise.resolve(void ran.push('first')));
    stack.push('second', () => Promise.reject(new Error('broken')));
    stack.push('third', () => Promise.resolve(void ran.push('third')));
    await Promise.all([stack.run(), stack.run()]);
    expect(ran).toEqual(['third', 'first']);
  });

  it('names the step running now, with the step of a stack run inside it, for the shutdown deadline', async () => {
    const outer = createCleanupStack(logger);
    const inner = createCleanupStack(logger);
    const httpClosing = deferred<void>();
    const httpReleased = deferred<void>();
    inner.push('http server', async () => {
      httpClosing.resolve();
      await httpReleased.promise;
    });
    inner.push('websocket server', () => Promise.resolve());
    outer.push('clients', () => Promise.resolve());
    outer.push('server', () => inner.run());

    expect(outer.current()).toBeUndefined();
    const running = outer.run();
    await httpClosing.promise;
    expect(outer.current()).toBe('server › http server');
    expect(inner.current()).toBe('http server');
    httpReleased.resolve();
    await running;
    expect(outer.current()).toBeUndefined();
  });
});
