/**
 * BullMQ reports every failed reconnect of its connection: the queue's and worker's errors are
 * logged at `warn` at most once a minute (a first error that is not an outage does not mute the
 * next ones for good), and the end of an outage once.
 */
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { outageLogger } from '../../src/pipeline/webhooks/bullmq-scheduler.ts';

describe('outage logger', () => {
  it('warns at most once a minute, the rest at debug, and says once when Redis is back', () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) } });
    // Never connects: only its events matter here.
    const connection = new Redis({ lazyConnect: true });
    onTestFinished(() => connection.disconnect());
    let now = 0;
    const report = outageLogger(connection, logger, 'webhook worker error', () => now);
    const levels = () => lines.map((line) => (line.level >= 40 ? 'warn' : line.level >= 30 ? 'info' : 'debug'));

    report(new Error('a script failed'));
    now = 30_000;
    report(new Error('connect ECONNREFUSED'));
    now = 61_000;
    report(new Error('connect ECONNREFUSED'));
    expect(levels()).toEqual(['warn', 'debug', 'warn']);

    connection.emit('ready');
    connection.emit('ready');
    report(new Error('connect ECONNREFUSED'));
    expect(levels()).toEqual(['warn', 'debug', 'warn', 'info', 'warn']);
  });
});
