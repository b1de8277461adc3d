import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { startupCheck } from '../../src/start/listen.ts';

describe('startupCheck', () => {
  it('fails, naming what has not started, until started() is called; then passes', async () => {
    const check = startupCheck('workers');
    expect(check.name).toBe('workers');
    await expect(check.check()).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: 'workers not started yet' });
    check.started();
    await expect(check.check()).resolves.toBeUndefined();
  });
});
