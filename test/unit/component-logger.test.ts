import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { componentLogger, createLogger } from '../../src/logger.ts';

/** A root logger writing into `lines`, one raw JSON line each. */
function capture(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter((line) => line !== ''));
      done();
    },
  });
  return { lines, logger: createLogger({ destination }) };
}

/** How many times `key` is written in one raw line (JSON.parse would keep only the last). */
const occurrences = (line: string, key: string) => line.split(`"${key}":`).length - 1;

describe('componentLogger', () => {
  it('names a component once, nested components as subcomponent, never a key twice', () => {
    const { lines, logger } = capture();
    const cdc = componentLogger(logger, 'cdc');
    const reader = componentLogger(cdc, 'wal-reader', { slot: 's1' });
    const deeper = componentLogger(reader, 'backoff');
    const same = componentLogger(componentLogger(logger, 'alerts'), 'alerts');
    cdc.info('a');
    reader.info('b');
    deeper.info('c');
    same.info('d');

    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toMatchObject([
      { component: 'cdc', msg: 'a' },
      { component: 'cdc', subcomponent: 'wal-reader', slot: 's1', msg: 'b' },
      { component: 'cdc', subcomponent: 'wal-reader', msg: 'c' },
      { component: 'alerts', msg: 'd' },
    ]);
    for (const line of lines) {
      expect(occurrences(line, 'component')).toBe(1);
      expect(occurrences(line, 'subcomponent')).toBeLessThanOrEqual(1);
    }
  });
});
