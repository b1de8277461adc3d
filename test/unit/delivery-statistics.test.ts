import { describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { createDeliveryStatistics } from '../../src/pipeline/webhooks/delivery-statistics.ts';

/** A database that records what it is asked and reports `tableRows` after an ANALYZE (fake: the logic is pure). */
function fakeDatabase(tableRows: number) {
  const asked: string[] = [];
  let failNext = false;
  let hold: Promise<void> | undefined;
  const db = {
    async query(text: string) {
      asked.push(text.startsWith('ANALYZE') ? 'ANALYZE' : 'reltuples');
      await hold;
      if (text.startsWith('ANALYZE') && failNext) {
        failNext = false;
        throw new Error('permission denied');
      }
      return { rows: [{ rows: tableRows }], rowCount: 1 };
    },
  } as unknown as Queryable;
  return {
    db,
    analyzes: () => asked.filter((text) => text === 'ANALYZE').length,
    failNext: () => void (failNext = true),
    holdQueries: (until: Promise<void>) => void (hold = until),
  };
}

const logger = createLogger({ level: 'silent' });

describe('delivery statistics', () => {
  it('analyzes once the inserts reach the minimum, then a fraction of the table as last analyzed', async () => {
    const fake = fakeDatabase(50_000);
    let time = 0;
    const statistics = createDeliveryStatistics({ db: fake.db, logger, minRows: 1_000, fraction: 0.2, minIntervalMs: 1_000, now: () => time });
    statistics.inserted(999);
    expect(fake.analyzes()).toBe(0);
    statistics.inserted(1);
    expect(fake.analyzes()).toBe(1);
    await statistics.close();

    const again = createDeliveryStatistics({ db: fake.db, logger, minRows: 1_000, fraction: 0.2, minIntervalMs: 1_000, now: () => time });
    again.inserted(1_000);
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect(fake.analyzes()).toBe(2);
    // The table holds 50,000 rows now: 20 % of them (10,000) call for the next look, not 1,000.
    time = 5_000;
    again.inserted(9_999);
    expect(fake.analyzes()).toBe(2);
    again.inserted(1);
    expect(fake.analyzes()).toBe(3);
    await again.close();
  });

  it('runs one ANALYZE at a time and at most one per interval; a failed one leaves its inserts counted', async () => {
    const fake = fakeDatabase(0);
    let time = 0;
    const statistics = createDeliveryStatistics({ db: fake.db, logger, minRows: 100, minIntervalMs: 1_000, now: () => time });
    let release!: () => void;
    fake.holdQueries(new Promise<void>((resolve) => (release = resolve)));
    statistics.inserted(100);
    // Under way: another threshold's worth waits for it.
    statistics.inserted(100);
    expect(fake.analyzes()).toBe(1);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    // Within the interval since that look started: none.
    time = 500;
    fake.failNext();
    statistics.inserted(100);
    expect(fake.analyzes()).toBe(1);
    time = 1_100;
    statistics.inserted(0);
    expect(fake.analyzes()).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    // That one failed: its 300 inserts still count, so the next insert after the interval looks again.
    time = 2_200;
    statistics.inserted(1);
    expect(fake.analyzes()).toBe(3);
    await statistics.close();
    statistics.inserted(10_000);
    expect(fake.analyzes()).toBe(3);
  });
});
