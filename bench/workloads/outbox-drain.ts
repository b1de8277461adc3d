/**
 * The `outbox` workload's drain: how fast a backlog of outbox rows is routed, by 1, 2 and 4
 * instances of the real poller (`createOutboxPoller`, each on its own pool, as worker processes
 * run it) and by the seed's naive poller (`peers/naive-outbox-poller.ts`), one configuration after
 * another on the same table, refilled for each, after an untimed drain of a tenth of it by each
 * kind of poller. Every configuration drains once per round (`--rounds`), the order reversed every
 * other round, so that each is compared with the naive poller of its own round: one sample each,
 * back to back in a fixed order, was what the ratios rested on before.
 *
 * The pollers run in the runner's process (no server, no subscriber: the drain is the poller's
 * work) and route into a real `EventRouter` over the in-memory log and bus, as `start/pipeline.ts`
 * wires them without Redis. The log's publish also books every event, so each configuration is
 * checked: every row routed exactly once, each entity's rows in insert order.
 */
import pg from 'pg';
import { createLogger } from '../../src/logger.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createOutboxPoller } from '../../src/pipeline/outbox/outbox-poller.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';
import { createMemoryBus } from '../../src/pipeline/pubsub/memory-bus.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createNaiveOutboxPoller } from '../peers/naive-outbox-poller.ts';
import { messageOf } from '../lib/report.ts';
import { alternatingOrder } from '../lib/rounds.ts';
import { clockMillis } from '../lib/fanout-payload.ts';
import type { SourceDatabase } from './cdc-setup.ts';

export interface DrainSettings {
  /** Rows of the backlog. */
  readonly rows: number;
  /** Entities the rows are spread over (row `s` belongs to entity `s mod entities`). */
  readonly entities: number;
  /** Tenants the rows are spread over (so streams, as in production). */
  readonly tenants: number;
  /** Longest a configuration may take to drain the backlog, in ms. */
  readonly timeoutMs: number;
  /** Times every configuration drains, one after another in each round (see `alternatingOrder`). */
  readonly rounds: number;
}

/** One configuration: the naive poller, or `pollers` instances of the real one. */
export interface DrainConfiguration {
  readonly name: string;
  readonly kind: 'naive' | 'partitioned';
  readonly pollers: number;
}

export const DRAIN_CONFIGURATIONS: readonly DrainConfiguration[] = [
  { name: 'naive poller (seed)', kind: 'naive', pollers: 1 },
  { name: 'createOutboxPoller × 1', kind: 'partitioned', pollers: 1 },
  { name: 'createOutboxPoller × 2', kind: 'partitioned', pollers: 2 },
  { name: 'createOutboxPoller × 4', kind: 'partitioned', pollers: 4 },
];

export interface DrainOutcome {
  readonly configuration: DrainConfiguration;
  /** The round it was measured in, from 1. */
  readonly round: number;
  readonly rows: number;
  /** Rows routed (counted by the pollers) when the drain ended. */
  readonly routed: number;
  /** Start of the pollers → every row routed and its transaction committed, in ms. */
  readonly elapsedMs: number;
  /** Every row was routed within the timeout. */
  readonly drained: boolean;
  /** Rows still pending in the table afterwards. */
  readonly pending: number;
  /** Distinct rows that reached the log; of those, routed again; arrived before an earlier row of their entity. */
  readonly distinct: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  /** The runner process's CPU (pollers, router, log) over the drain, in µs. */
  readonly pollerCpuMicros: number;
  /** CPU of the Postgres backends of the drain's database over the drain, in µs; NaN without /proc. */
  readonly postgresCpuMicros: number;
  /** Why the configuration could not be measured, if it could not. */
  readonly failure: string | undefined;
}

const TABLE = 'outbox_drain';
const DATABASE = 'outbox_drain';
const TOPIC = 'bench.drain';
const OUTBOX_ID = 'bench-drain';
const SCOPE = { app: 'bench', env: 'drain' };

/** Runs every configuration on a database of its own (so its backends are the pollers'); never throws for what a poller did. */
export async function runDrain(source: Pick<SourceDatabase, 'createDatabase' | 'databaseCpuMicros'>, settings: DrainSettings): Promise<DrainOutcome[]> {
  const url = await source.createDatabase(DATABASE);
  // Seeds, analyzes and checks; it stays connected (and idle) while the pollers run, so its own
  // backend adds nothing to the Postgres CPU measured.
  const admin = new pg.Client({ connectionString: url, application_name: 'bench-drain-admin' });
  admin.on('error', () => {});
  await admin.connect();
  try {
    await admin.query(outboxTableDdl(outboxTable(TABLE)));
    // Untimed: a tenth of the backlog through each kind of poller, so the first timed drain does
    // not pay for compiling the routing path.
    const warmup = { ...settings, rows: Math.max(1000, Math.round(settings.rows / 10)) };
    for (const kind of ['naive', 'partitioned'] as const) {
      const configuration = DRAIN_CONFIGURATIONS.find((each) => each.kind === kind && each.pollers === 1);
      if (configuration) await drainOnce(source, url, admin, configuration, warmup);
    }
    const outcomes: DrainOutcome[] = [];
    for (let round = 1; round <= settings.rounds; round += 1) {
      for (const configuration of alternatingOrder(DRAIN_CONFIGURATIONS, round)) outcomes.push({ ...(await drainOnce(source, url, admin, configuration, settings)), round });
    }
    return outcomes;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Refills the table with `rows` pending rows in one statement, then refreshes the planner's statistics. */
async function seed(admin: pg.Client, settings: DrainSettings): Promise<void> {
  const table = outboxTable(TABLE).sql;
  await admin.query(`TRUNCATE ${table} RESTART IDENTITY`);
  // Ids follow the series, so row s has id s and seq s: an entity's insert order is its seq order.
  await admin.query(
    `INSERT INTO ${table} (topic, event_type, payload, tenant, entity, table_name, operation)
       SELECT $1, 'contact.created',
              jsonb_build_object('seq', s, 'name', 'Contact ' || s, 'email', 'contact' || s || '@example.com', 'status', 'active'),
              't' || (s % $2::int), 'account:' || (s % $3::int), 'contacts', 'insert'
         FROM generate_series(1, $4::int) AS s ORDER BY s`,
    [TOPIC, settings.tenants, settings.entities, settings.rows],
  );
  // Autovacuum is off on this Postgres: without fresh statistics the planner guesses the pending scan.
  await admin.query(`VACUUM ANALYZE ${table}`);
}

/** Books each routed event: exactly once, and in seq order within its entity. */
function createDrainLedger(rows: number) {
  const seen = new Uint8Array(rows + 1);
  const lastOfEntity = new Map<string, number>();
  const counts = { distinct: 0, duplicates: 0, outOfOrder: 0 };
  return {
    counts,
    book(event: RealtimeEvent) {
      const seq = event.payload['seq'];
      if (typeof seq !== 'number' || seq < 1 || seq > rows) return;
      if (seen[seq] === 1) {
        counts.duplicates += 1;
        return;
      }
      seen[seq] = 1;
      counts.distinct += 1;
      const entity = event.metadata.entity ?? '';
      if (seq < (lastOfEntity.get(entity) ?? 0)) counts.outOfOrder += 1;
      else lastOfEntity.set(entity, seq);
    },
  };
}

async function drainOnce(
  source: Pick<SourceDatabase, 'databaseCpuMicros'>,
  url: string,
  admin: pg.Client,
  configuration: DrainConfiguration,
  settings: DrainSettings,
): Promise<Omit<DrainOutcome, 'round'>> {
  const logger = createLogger({ level: 'silent' });
  const ledger = createDrainLedger(settings.rows);
  const bus = createMemoryBus();
  // The production wiring without Redis (start/pipeline.ts): the log publishes to the bus.
  const log = createMemoryLog({
    retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 },
    publish: (stream, event) => {
      bus.deliver(stream, event);
      ledger.book(event);
    },
  });
  const router = createEventRouter({ log, logger });
  const pools: pg.Pool[] = [];
  let routed = 0;
  let failure: string | undefined;
  const { promise: done, resolve: finish } = Promise.withResolvers<void>();
  const onRouted = (count: number) => {
    routed += count;
    if (routed >= settings.rows) finish();
  };
  const onFailure = (error: Error) => {
    failure ??= error.message;
    finish();
  };
  const pollers: { start(): void; stop(): Promise<void> }[] = [];
  for (let index = 0; index < configuration.pollers; index += 1) {
    // Each poller its own pool, as each worker process has (createOutboxPool: the production pool).
    const pool = createOutboxPool(url, logger);
    pools.push(pool);
    pollers.push(
      configuration.kind === 'naive'
        ? createNaiveOutboxPoller({ pool, table: TABLE, outboxId: OUTBOX_ID, scope: SCOPE, router, onRouted, onFailure })
        : createOutboxPoller({ pool, table: TABLE, outboxId: OUTBOX_ID, scope: SCOPE, router, logger, metrics: { routed: onRouted, dead: () => undefined } }),
    );
  }

  let elapsedMs = Number.NaN;
  let pollerCpuMicros = Number.NaN;
  let postgresCpuMicros = Number.NaN;
  try {
    await seed(admin, settings);
    const postgresBefore = await source.databaseCpuMicros(DATABASE);
    const cpuBefore = process.cpuUsage();
    const startedAt = clockMillis();
    for (const poller of pollers) poller.start();
    const timer = setTimeout(finish, settings.timeoutMs);
    await done;
    clearTimeout(timer);
    // Stopping lets each poller commit the batch in flight: then the last rows are marked too.
    const stopped = await Promise.allSettled(pollers.map((poller) => poller.stop()));
    elapsedMs = clockMillis() - startedAt;
    const cpu = process.cpuUsage(cpuBefore);
    pollerCpuMicros = cpu.user + cpu.system;
    postgresCpuMicros = (await source.databaseCpuMicros(DATABASE)) - postgresBefore;
    for (const result of stopped) if (result.status === 'rejected') failure ??= messageOf(result.reason);
  } catch (error) {
    failure ??= messageOf(error);
    await Promise.allSettled(pollers.map((poller) => poller.stop()));
  } finally {
    await Promise.allSettled(pools.map((pool) => pool.end()));
    await log.close();
  }
  const { rows } = await admin.query<{ pending: string }>(`SELECT count(*) AS pending FROM ${outboxTable(TABLE).sql} WHERE processed_at IS NULL`);
  return {
    configuration,
    rows: settings.rows,
    routed,
    elapsedMs,
    drained: routed >= settings.rows,
    pending: Number(rows[0]?.pending ?? Number.NaN),
    ...ledger.counts,
    pollerCpuMicros,
    postgresCpuMicros,
    failure,
  };
}
