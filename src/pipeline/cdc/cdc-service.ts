import type { Redis } from 'ioredis';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventRouter } from '../router/event-router.ts';
import { createCdcSource, modelTopic, sourceIdOf, topicPattern, type CdcBinding, type CdcSource, type CdcSourceOptions, type CdcSourceStatus } from './cdc-source.ts';
import type { CdcStore, StoredMapping } from './cdc-store.ts';
import { checkMappingAgainstTable, type TableShape } from './mapping/mapping-check.ts';
import { mappingTable, type DomainMapping } from './mapping/mapping.ts';
import { withConnection } from './wal/replication-setup.ts';
import { describeTable } from './mapping/table-catalog.ts';

/**
 * What would let one mapping's events land in a model stream that is not its own: its topic is
 * (or its template can produce) a model stream `{module}.{model}`, or its model stream is a topic
 * another mapping can produce, or its model already belongs to another module.
 */
export function streamConflicts(mapping: DomainMapping, others: readonly DomainMapping[]): string[] {
  const problems: string[] = [];
  const ownStream = modelTopic(mapping);
  if (topicPattern(mapping.topic).test(ownStream)) {
    problems.push(`topic "${mapping.topic}" is the model stream of ${ownStream} (read it with changes(model:)); choose another topic`);
  }
  for (const other of others) {
    if (other.model === mapping.model && other.module !== mapping.module) {
      problems.push(`model "${mapping.model}" already belongs to module "${other.module}" (mapping "${other.name}")`);
    }
    if (topicPattern(mapping.topic).test(modelTopic(other))) {
      problems.push(`topic "${mapping.topic}" would publish into the model stream ${modelTopic(other)} of mapping "${other.name}"`);
    }
    if (topicPattern(other.topic).test(ownStream)) {
      problems.push(`the model stream ${ownStream} is a topic of mapping "${other.name}" ("${other.topic}"); choose another module or model`);
    }
  }
  return problems;
}

/**
 * CDC as a whole: one reader per distinct source database (`cdc-source.ts`), with the mappings
 * of every environment that points at it. Sources and mappings are kept in the platform database
 * and polled for changes, so a mapping saved on any instance applies on the reading one without a
 * restart. Also answers what the API needs: which module a model belongs to, checking a mapping
 * against its table before it is saved, and reader status.
 */
export interface CdcService {
  start(): Promise<void>;
  /** Reloads sources and mappings now (after an admin change on this instance). */
  reload(): Promise<void>;
  /** The mapping that defines `model` in an environment (its module gives the permission). */
  modelMapping(scope: { app: string; env: string }, model: string): DomainMapping | undefined;
  /** @throws BAD_USER_INPUT naming what to fix when the mapping does not fit its table. */
  checkMapping(scope: { app: string; env: string }, mapping: DomainMapping): Promise<void>;
  /** The reader of an environment's source, as this instance knows it. */
  status(scope: { app: string; env: string }): Promise<CdcSourceStatus | undefined>;
  /** The readers this instance leads, as last inspected (for metrics). */
  leading(): CdcSourceStatus[];
  close(): Promise<void>;
}

export interface CdcServiceOptions {
  readonly store: CdcStore;
  readonly router: EventRouter;
  readonly log: EventLog;
  readonly logger: Logger;
  readonly redis: Redis | undefined;
  readonly keyPrefix: string;
  readonly slotName: string;
  readonly publicationName: string;
  /** Leader election timings of every source's reader. @default the election's defaults */
  readonly election?: CdcSourceOptions['election'];
  /** How often sources and mappings are checked for changes, in ms. */
  readonly reloadIntervalMs: number;
  /** How long raw changes are kept, in ms. */
  readonly rawRetentionMs: number;
  readonly onUnroutable?: (mapping: string) => void;
}

const HOUSEKEEPING_MS = 5000;

export function createCdcService(options: CdcServiceOptions): CdcService {
  const { store } = options;
  const logger = options.logger.child({ component: 'cdc' });
  const sources = new Map<string, { databaseUrl: string; source: CdcSource }>();
  /** By `app/env`: the environment's mappings and the source it reads. */
  let environments = new Map<string, { databaseUrl: string; mappings: readonly DomainMapping[] }>();
  let version: string | undefined;
  let reloading: Promise<void> | undefined;
  let closed = false;

  const envKey = (scope: { app: string; env: string }) => `${scope.app}/${scope.env}`;

  const load = async (): Promise<void> => {
    const current = await store.version();
    if (current === version) return;
    const [sourceRows, mappingRows] = await Promise.all([store.listSources(), store.listMappings()]);
    const byEnv = new Map<string, StoredMapping[]>();
    for (const row of mappingRows) byEnv.set(envKey(row), [...(byEnv.get(envKey(row)) ?? []), row]);
    const nextEnvironments = new Map(
      sourceRows.map((row) => [envKey(row), { databaseUrl: row.databaseUrl, mappings: (byEnv.get(envKey(row)) ?? []).map((m) => m.mapping) }]),
    );
    // Bindings per database, with the catalog entries of the mapped tables.
    const bindingsByUrl = new Map<string, CdcBinding[]>();
    for (const row of sourceRows) {
      const mappings = nextEnvironments.get(envKey(row))!.mappings;
      const tables = await describeTables(row.databaseUrl, mappings);
      bindingsByUrl.set(row.databaseUrl, [...(bindingsByUrl.get(row.databaseUrl) ?? []), { scope: row, mappings, tables }]);
    }
    for (const [id, entry] of sources) {
      if (bindingsByUrl.has(entry.databaseUrl)) continue;
      sources.delete(id);
      await entry.source.stop();
    }
    for (const [databaseUrl, bindings] of bindingsByUrl) {
      const id = sourceIdOf(databaseUrl);
      const existing = sources.get(id);
      if (existing) {
        existing.source.setBindings(bindings);
        continue;
      }
      const source = createCdcSource({ ...options, databaseUrl, bindings });
      sources.set(id, { databaseUrl, source });
      await source.start();
    }
    environments = nextEnvironments;
    version = current;
  };

  /** Catalog entries of the mapped tables; a source that cannot be reached now gets none (retried at the next reload). */
  const describeTables = async (databaseUrl: string, mappings: readonly DomainMapping[]): Promise<Map<string, TableShape>> => {
    const tables = new Map<string, TableShape>();
    if (mappings.length === 0) return tables;
    try {
      await withConnection(databaseUrl, async (client) => {
        for (const mapping of mappings) {
          const shape = await describeTable(client, mappingTable(mapping));
          if (shape) tables.set(mapping.table, shape);
        }
      });
    } catch (error) {
      logger.warn({ err: error, source: sourceIdOf(databaseUrl) }, 'could not read the source catalog');
    }
    return tables;
  };

  /** Runs a load that starts after this call (one queued behind a running one serves every caller meanwhile). */
  let queued: Promise<void> | undefined;
  const reload = (): Promise<void> => {
    if (queued) return queued;
    const start = () => (reloading = load().finally(() => (reloading = undefined)));
    if (!reloading) return start();
    queued = reloading
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };

  const housekeeping = async () => {
    await reload();
    for (const { source } of sources.values()) await source.inspect().catch(() => undefined);
    await store.pruneRawChanges(new Date(Date.now() - options.rawRetentionMs), 10_000);
  };

  const reloadTimer = setInterval(() => {
    if (!closed) reload().catch((error: unknown) => logger.warn({ err: error }, 'CDC reload failed'));
  }, options.reloadIntervalMs);
  reloadTimer.unref();
  const housekeepingTimer = setInterval(() => {
    if (!closed) housekeeping().catch((error: unknown) => logger.warn({ err: error }, 'CDC housekeeping failed'));
  }, HOUSEKEEPING_MS);
  housekeepingTimer.unref();

  return {
    start: reload,
    reload,

    modelMapping(scope, model) {
      return environments.get(envKey(scope))?.mappings.find((mapping) => mapping.model === model);
    },

    async checkMapping(scope, mapping) {
      const source = await store.getSource(scope.app, scope.env);
      if (!source) {
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'Set a CDC source database for this environment (setCdcSource) before saving mappings', {
          details: { field: 'mapping' },
        });
      }
      const others = (await store.listMappings(scope)).map((stored) => stored.mapping).filter((m) => m.name !== mapping.name);
      const problems = streamConflicts(mapping, others);
      let shape: TableShape | undefined;
      try {
        shape = await withConnection(source.databaseUrl, (client) => describeTable(client, mappingTable(mapping)));
      } catch (error) {
        throw new TributaryError(ErrorCode.UNAVAILABLE, 'The CDC source database cannot be reached to check the mapping; retry shortly', { cause: error });
      }
      if (!shape) problems.push(`table ${mapping.table} does not exist in the source database`);
      else problems.push(...checkMappingAgainstTable(mapping, shape));
      if (problems.length > 0) {
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, `Mapping "${mapping.name}" cannot be saved: ${problems.join('; ')}`, {
          details: { field: 'mapping', problems },
        });
      }
    },

    async status(scope) {
      const source = await store.getSource(scope.app, scope.env);
      if (!source) return undefined;
      const id = sourceIdOf(source.databaseUrl);
      const local = sources.get(id)?.source.status();
      if (local?.leading) return local;
      // Another instance leads: what it last wrote.
      const stored = await store.getStatus(id);
      return {
        source: id,
        leading: false,
        state: stored?.state === undefined ? 'starting' : (stored.state as CdcSourceStatus['state']),
        lastReceivedLsn: null,
        lastAcknowledgedLsn: stored?.lastLsn ?? null,
        lagBytes: stored?.lagBytes ?? null,
        retainedWalBytes: stored?.retainedWalBytes ?? null,
        lastError: stored?.lastError ?? local?.lastError ?? null,
      };
    },

    leading() {
      return [...sources.values()].map(({ source }) => source.status()).filter((status) => status.leading);
    },

    async close() {
      closed = true;
      clearInterval(reloadTimer);
      clearInterval(housekeepingTimer);
      await reloading?.catch(() => undefined);
      await Promise.all([...sources.values()].map(({ source }) => source.stop()));
      sources.clear();
    },
  };
}
