/**
 * A CDC source (`createCdcSource`) against a real Postgres, with the real router, a memory log and
 * the real CDC store on a migrated platform database: the event ids of a multi-insert's rows, each
 * row's order when a transaction fails to route once, and which raw changes are kept.
 */
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { createCdcSource } from '../../src/pipeline/cdc/cdc-source.ts';
import { createCdcStore } from '../../src/pipeline/cdc/cdc-store.ts';
import type { TableShape } from '../../src/pipeline/cdc/mapping/mapping-check.ts';
import { parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import type { RowChange, TransactionChunk } from '../../src/pipeline/cdc/row-change.ts';
import { compareLsn } from '../../src/pipeline/cdc/wal/lsn.ts';
import { createSourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';
import { createWalReader } from '../../src/pipeline/cdc/wal/wal-reader.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { stableEventId } from '../../src/pipeline/events/event-id.ts';
import type { EventLog } from '../../src/pipeline/log/event-log.ts';
import { createMemoryLog } from '../../src/pipeline/log/memory-log.ts';
import { createEventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase, openTestPool, uniqueName } from '../helpers/services.ts';
import { deferred, waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const ITEMS = parseMapping({ name: 'items', table: 'items', events: ['insert', 'update', 'delete'], topic: 'inv.item-events', module: 'inv', model: 'items' });
const ITEMS_SHAPE: TableShape = { replicaIdentity: 'default', keyColumns: ['id'], primaryKey: ['id'], columns: ['id', 'v'] };
const MODEL_TOPIC = 'inv.items';

interface SourceRig {
  /** A pool on the source database. */
  readonly sql: pg.Pool;
  /** A pool on the platform database (the CDC store's). */
  readonly platform: pg.Pool;
  /** Every event the log placed, in placement order. */
  readonly placed: RealtimeEvent[];
  readonly source: ReturnType<typeof createCdcSource>;
}

interface RigOptions {
  /** Wraps the memory log (to make an append fail). */
  readonly wrapLog?: (log: EventLog) => EventLog;
  /** Read the platform database itself as the source. @default false */
  readonly platformIsSource?: boolean;
  readonly mappings?: readonly { readonly mapping: ReturnType<typeof parseMapping>; readonly table: string; readonly shape: TableShape }[];
}

/** Table `items (id int PRIMARY KEY, v int)` in the source, and a source reading it, streaming. */
async function startSource(options: RigOptions = {}): Promise<SourceRig> {
  const platformDb = await createTestDatabase();
  const platformDatabase = createPostgresDatabase({ url: platformDb.url, logger });
  onTestFinished(() => platformDatabase.close());
  await migrate(platformDatabase, { logger });
  const sourceUrl = options.platformIsSource === true ? platformDb.url : (await createTestDatabase()).url;
  const sql = openTestPool(sourceUrl);
  await sql.query('CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)');
  const placed: RealtimeEvent[] = [];
  const memory = createMemoryLog({ retention: { maxEvents: 10_000, maxAgeMs: 3_600_000 }, publish: (_stream, event) => void placed.push(event) });
  onTestFinished(() => memory.close());
  const log = options.wrapLog ? options.wrapLog(memory) : memory;
  const connections = createSourceConnections(sourceUrl);
  const mappings = options.mappings ?? [{ mapping: ITEMS, table: 'public.items', shape: ITEMS_SHAPE }];
  const source = createCdcSource({
    id: 'src',
    connections,
    names: { slotName: uniqueName('slot'), publicationName: uniqueName('pub') },
    bindings: [{ scope: { app: 'shop', env: 'prod' }, mappings: mappings.map((m) => m.mapping), tables: new Map(mappings.map((m) => [m.table, m.shape])) }],
    router: createEventRouter({ log, logger }),
    log,
    store: createCdcStore(platformDatabase),
    logger,
    redis: undefined,
    keyPrefix: `${uniqueName()}:`,
  });
  onTestFinished(async () => {
    await source.stop();
    await connections.dispose();
  });
  await source.start();
  await waitFor(() => source.status().state === 'streaming', { timeoutMs: 20_000, message: 'the source streams' });
  return { sql, platform: openTestPool(platformDb.url), placed, source };
}

const recordOf = (event: RealtimeEvent) => event.payload['record'] as Record<string, unknown>;
const modelEvents = (rig: SourceRig) => rig.placed.filter((event) => event.topic === MODEL_TOPIC);

/** Three rows in one COPY: Postgres writes them as one multi-insert record, so they share an LSN. */
const COPY_THREE = `COPY items (id, v) FROM PROGRAM 'printf "1\\t10\\n2\\t20\\n3\\t30\\n"'`;

describe('CDC event ids', () => {
  it('numbers the changes of a transaction that share an LSN (the rows of one COPY) across its chunks, the same again on redelivery', async () => {
    const db = await createTestDatabase();
    const sql = openTestPool(db.url);
    await sql.query('CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)');
    const connections = createSourceConnections(db.url);
    const deliveries: TransactionChunk[][] = [[]];
    let failFinal = true;
    const reader = createWalReader({
      connections,
      logger,
      slotName: uniqueName('slot'),
      publicationName: uniqueName('pub'),
      maxChunkChanges: 2,
      reconnectMaxDelayMs: 200,
      handle: (chunk) => {
        deliveries.at(-1)!.push(chunk);
        if (chunk.final && failFinal) {
          // Received again from its first chunk after the reconnect.
          failFinal = false;
          deliveries.push([]);
          return Promise.reject(new Error('injected handler failure'));
        }
        return Promise.resolve();
      },
    });
    onTestFinished(async () => {
      await reader.stop();
      await connections.dispose();
    });
    await reader.start();
    await sql.query(`BEGIN; INSERT INTO items VALUES (0, 0); ${COPY_THREE}; COMMIT`);
    await waitFor(() => deliveries[1]!.some((chunk) => chunk.final), { timeoutMs: 20_000, message: 'the transaction is received again' });

    const [first, again] = deliveries as [TransactionChunk[], TransactionChunk[]];
    const summary = (chunks: readonly TransactionChunk[]) => chunks.map((chunk) => chunk.changes.map((change: RowChange) => [change.lsnIndex, change.new?.['id']]));
    // The insert is alone at its LSN; the COPY's rows are numbered at theirs, across the chunks.
    expect(summary(first)).toEqual([[[0, 0], [0, 1]], [[1, 2], [2, 3]]]);
    expect(summary(again)).toEqual(summary(first));
    // The premise: all three rows carry the record's LSN, so the LSN alone does not tell them apart.
    const lsns = first.flatMap((chunk) => chunk.changes.map((change) => change.lsn));
    expect(new Set(lsns).size).toBe(2);
    expect(new Set(lsns.slice(1)).size).toBe(1);
    expect(again.flatMap((chunk) => chunk.changes.map((change) => change.lsn))).toEqual(first.flatMap((chunk) => chunk.changes.map((change) => change.lsn)));
  });

  it('gives each row of a COPY an event id of its own, shared by its model change and its mapping-topic event; a single-row change keeps the id of earlier versions', async () => {
    const rig = await startSource();
    await rig.sql.query('INSERT INTO items VALUES (9, 90)');
    await rig.sql.query(COPY_THREE);
    await waitFor(() => modelEvents(rig).length === 4, { timeoutMs: 20_000, message: 'four model changes' });

    const models = modelEvents(rig);
    expect(models.map((event) => recordOf(event)['id'])).toEqual([9, 1, 2, 3]);
    expect(new Set(models.map((event) => event.id)).size).toBe(4);
    const topicIds = rig.placed.filter((event) => event.topic === 'inv.item-events').map((event) => event.id);
    expect(topicIds).toEqual(models.map((event) => event.id));

    // The changes' LSNs, as the raw changes keep them.
    const rawLsns = async () => (await rig.platform.query<{ lsn: string }>('SELECT lsn FROM cdc_events ORDER BY id')).rows.map((row) => row.lsn);
    await waitFor(async () => (await rawLsns()).length === 4, { timeoutMs: 20_000, message: 'the raw changes are stored' });
    const [single, copy] = [...new Set(await rawLsns())] as [string, string];
    // The id every version before rows sharing an LSN were told apart gave: a rolling upgrade receives
    // an unconfirmed change again under the same id. Only the COPY's further rows add their index.
    expect(models.map((event) => event.id)).toEqual([
      stableEventId('src', single, ITEMS.name),
      stableEventId('src', copy, ITEMS.name),
      stableEventId('src', copy, ITEMS.name, '1'),
      stableEventId('src', copy, ITEMS.name, '2'),
    ]);
  });
});

describe('CDC routing after a failure', () => {
  it("keeps a row's order when one of its transactions fails to route once: a later one of the row waits for the redelivery", async () => {
    const markerPlaced = deferred();
    let failed = false;
    const rig = await startSource({
      wrapLog: (log) => ({
        ...log,
        async appendMany(stream, events) {
          if (!failed && events.some((event) => event.topic === MODEL_TOPIC && event.payload['record'] !== null && (event.payload['record'] as Record<string, unknown>)['v'] === 1)) {
            failed = true;
            // Fails once the marker's transaction, committed after the row's second update, is in the log:
            // by then that update has been handed over and waits behind this one.
            await markerPlaced.promise;
            throw new Error('injected append failure');
          }
          const placed = await log.appendMany(stream, events);
          if (events.some((event) => (event.payload['record'] as Record<string, unknown> | undefined)?.['id'] === 9)) markerPlaced.resolve();
          return placed;
        },
      }),
    });
    await rig.sql.query('INSERT INTO items VALUES (1, 0)');
    await waitFor(() => modelEvents(rig).length === 1, { timeoutMs: 20_000 });
    await rig.sql.query('UPDATE items SET v = 1 WHERE id = 1');
    await rig.sql.query('UPDATE items SET v = 2 WHERE id = 1');
    await rig.sql.query('INSERT INTO items VALUES (9, 0)');

    // What a subscriber that drops redeliveries by event id (as the SDK does) applies, in log order.
    const applied = () => {
      const seen = new Set<string>();
      const versions: unknown[] = [];
      for (const event of modelEvents(rig)) {
        if (recordOf(event)['id'] !== 1 || seen.has(event.id)) continue;
        seen.add(event.id);
        versions.push(recordOf(event)['v']);
      }
      return versions;
    };
    await waitFor(() => applied().includes(1) && applied().includes(2), { timeoutMs: 20_000, message: 'both updates are placed' });
    expect(failed).toBe(true);
    expect(applied()).toEqual([0, 1, 2]);
    expect(recordOf(modelEvents(rig).findLast((event) => recordOf(event)['id'] === 1)!)['v']).toBe(2);
  });
});

describe('CDC raw changes', () => {
  it("keeps raw changes of mapped tables only, and never of the platform's own cdc_events, even when the platform database is read and a mapping reads cdc_events", async () => {
    const rig = await startSource({
      platformIsSource: true,
      mappings: [
        { mapping: ITEMS, table: 'public.items', shape: ITEMS_SHAPE },
        {
          mapping: parseMapping({ name: 'audit', table: 'cdc_events', events: ['insert'], topic: 'ops.raw-changes', module: 'ops', model: 'raw' }),
          table: 'public.cdc_events',
          shape: { replicaIdentity: 'default', keyColumns: ['id'], primaryKey: ['id'], columns: ['id'] },
        },
      ],
    });
    await rig.sql.query('CREATE TABLE others (id int PRIMARY KEY)');
    await rig.sql.query('INSERT INTO others VALUES (1)');
    await rig.sql.query('INSERT INTO items VALUES (1, 0)');
    const tables = async () => (await rig.platform.query<{ table_name: string }>('SELECT table_name FROM cdc_events ORDER BY id')).rows.map((row) => row.table_name);
    await waitFor(async () => (await tables()).includes('public.items'), { timeoutMs: 20_000, message: 'the raw change of items is stored' });
    // The insert of that raw change is itself read (and mapped): wait until it is handled.
    await waitFor(() => rig.placed.some((event) => event.topic === 'ops.raw'), { timeoutMs: 20_000, message: 'the cdc_events insert is read' });
    const { rows } = await rig.platform.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor(() => {
      const acknowledged = rig.source.status().lastAcknowledgedLsn;
      return acknowledged !== null && compareLsn(acknowledged, rows[0]!.lsn) >= 0;
    }, { timeoutMs: 30_000, message: 'everything written so far is handled' });
    await rig.source.stop(); // writes what the raw-change writer still holds

    expect(await tables()).toEqual(['public.items']);
  });
});
