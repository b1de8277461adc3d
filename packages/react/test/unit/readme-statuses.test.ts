/**
 * The README's `useRealtime` result table names every status the hook returns: the list below is
 * checked complete against `RealtimeStatus` by the compiler (`npm run typecheck`), and the README
 * against the list by the run.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RealtimeStatus } from '../../src/index.ts';

const EVERY_STATUS = Object.keys({ idle: true, loading: true, live: true, reconnecting: true, resyncing: true, unauthorized: true, error: true, closed: true } satisfies Record<RealtimeStatus, true>);

describe('the README', () => {
  it('lists every status of useRealtime in its result table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const row = readme.split('\n').find((line) => line.startsWith('| `status` |'));
    expect(row).toBeDefined();
    const listed = [...new Set([...row!.matchAll(/`([a-z]+)`/g)].map((match) => match[1]))].filter((name) => name !== 'status');
    expect(listed.sort()).toEqual([...EVERY_STATUS].sort());
  });
});
