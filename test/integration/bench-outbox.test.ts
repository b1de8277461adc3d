/**
 * The `outbox` benchmark's setup and drain, run as the workload runs them (its private Postgres,
 * its databases, `setOutboxSource` over GraphQL on a real server, the real pollers): the WAL arm's
 * reader must not be sent the CDC baseline's rows while the baseline is measured, and the drain's
 * ratios must come from repeated rounds, not from one sample per configuration.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { WorkloadContext } from '../../bench/lib/workload.ts';
import { startSourceDatabase } from '../../bench/workloads/cdc-setup.ts';
import { DRAIN_CONFIGURATIONS, runDrain } from '../../bench/workloads/outbox-drain.ts';
import { configureArm, namesOf, prepareArmDatabases } from '../../bench/workloads/outbox-setup.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

/** What `startSourceDatabase` needs of the runner: its cleanup, run when the test finishes. */
function benchContext(): WorkloadContext {
  const steps: (() => Promise<void>)[] = [];
  onTestFinished(async () => {
    for (const step of steps.reverse()) await step();
  });
  return {
    quick: true,
    rounds: 1,
    startPeer: () => Promise.reject(new Error('no peers in this test')),
    defer: (_name, step) => steps.push(step),
  };
}

describe('bench outbox workload', () => {
  it('gives the WAL arm a publication of its own table only, the CDC baseline’s table out of its reach', { timeout: 120_000 }, async () => {
    const source = await startSourceDatabase(benchContext());
    const databases = await prepareArmDatabases(source);
    const walUrl = databases.get('outbox-wal');
    expect(walUrl).toBeDefined();
    expect(new Set(databases.values()).size).toBe(databases.size);

    const server = await startTestServer({ JWT_SECRET: source.secret, CDC_RELOAD_INTERVAL_MS: '200' });
    expect(await configureArm({ httpUrl: server.graphqlUrl }, 'outbox-wal', { url: walUrl!, secret: source.secret })).toBe('WAL');

    const app = new pg.Client({ connectionString: walUrl });
    await app.connect();
    onTestFinished(() => app.end());
    // The reader creates its publication before it streams from its slot.
    await waitFor(async () => (await app.query('SELECT 1 FROM pg_replication_slots WHERE active AND database = current_database()')).rowCount === 1, {
      timeoutMs: 60_000,
      message: 'the WAL reader is not streaming',
    });
    const { rows } = await app.query<{ tablename: string }>(
      'SELECT DISTINCT tablename FROM pg_publication_tables WHERE pubname <> $1 ORDER BY 1',
      [namesOf('cdc').publication],
    );
    expect(rows.map((row) => row.tablename)).toEqual([namesOf('outbox-wal').table]);
  });

  it('drains every configuration once per round, the order reversed every other round, each exactly once', { timeout: 120_000 }, async () => {
    const source = await startSourceDatabase(benchContext());
    const outcomes = await runDrain(source, { rows: 300, entities: 10, tenants: 2, timeoutMs: 30_000, rounds: 2 });
    const names = DRAIN_CONFIGURATIONS.map((configuration) => configuration.name);
    expect(outcomes.map((outcome) => [outcome.round, outcome.configuration.name])).toEqual([
      ...names.map((name) => [1, name]),
      ...names.toReversed().map((name) => [2, name]),
    ]);
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({ rows: 300, routed: 300, drained: true, pending: 0, distinct: 300, duplicates: 0, outOfOrder: 0, failure: undefined });
    }
  });
});
