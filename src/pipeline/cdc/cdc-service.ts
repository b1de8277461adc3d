import type { Redis } from 'ioredis';
import { ErrorCode, isTributaryError, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { isDatabaseUnreachable } from '../connection-errors.ts';
import { createKeyedCoalescer } from '../coordination/keyed-serial.ts';
import { createReleaseSignals } from '../coordination/release-signals.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventRouter } from '../router/event-router.ts';
import { createCdcSource, sourceIdOf, type CdcSource, type CdcSourceOptions, type CdcSourceStatus } from './cdc-source.ts';
import type { CdcSourceRecord, CdcStore, RetiredSlotNote, StoredMapping } from './cdc-store.ts';
import type { DomainMapping } from './mapping/mapping.ts';
import { checkSource } from './mapping/mapping-source-check.ts';
import { streamConflicts } from './mapping/mapping-topics.ts';
import { pruneExpiredRawChanges } from './raw-change-log.ts';
import { assertNamesAgree, checkedNames, followerStatus, idleStatus, namesOf, sameNames } from './source-names.ts';
import { deploymentNaming, type DeploymentNaming } from './deployment-slots.ts';
import { defaultReplicationNames, identityKey, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';
import { assertLogicalReplicationAllowed } from './wal/replication-setup.ts';
import { createRetiredSlots, knownDatabase, previousDatabase, slotOwner } from './retired-slots.ts';
import { dropOtherSlot } from './other-slot-drop.ts';
import { dropUnusedPublication, identifyWarningOfPublication } from './publication-upkeep.ts';
import { createSourceCatalogs } from './source-catalogs.ts';
import { createSourceEndpoints, describeMappedTables } from './source-endpoints.ts';
import { groupByDatabase, IDENTITY_WAIT_MS, type SourceGroup } from './source-groups.ts';
import type { SourceConnectionFactory, SourceConnections } from './wal/source-connections.ts';
import type { WalOutboxBinding, WalOutboxCatalog, WalOutboxFigures, WalOutboxSource } from './wal-outboxes.ts';

export type { WalOutboxCatalog, WalOutboxSource } from './wal-outboxes.ts';

/**
 * CDC as a whole: one reader per source *database* (`cdc-source.ts`), keyed by the database's
 * identity (`wal/replication-names.ts`), with the mappings of every environment that points at it
 * under whatever URL. Sources and mappings are kept in the platform database and polled for
 * changes, so a mapping saved on any instance applies on the reading one without a restart. Also
 * answers what the API needs: setting a source (checked first), which module a model belongs to,
 * checking a mapping against its table before it is saved, and reader status.
 *
 * Outboxes read in WAL mode join the reader of their database (a reader of its own when the
 * database is no CDC source): same slot, same publication (the table is added when it is not in it).
 * Their table statements run on connections of their own URL (`connectOutbox`), not the reader's.
 *
 * Connections: one `SourceConnections` per source URL, made by the injected factory and disposed
 * once no environment and no reader uses it (idle pooled connections close on their own).
 *
 * Slots: each deployment (platform database) reads a database on a slot of its own (`deployment-slots.ts`).
 * When a database loses its last environment and WAL-mode outbox, or its slot name changes, the
 * old slot is noted in the platform database, and dropped once its reader stopped (`retired-slots.ts`).
 */
export interface CdcService {
  /**
   * The first load of sources and mappings, awaited at startup (a platform database that cannot be
   * read fails the start). The same as `reload`: the periodic reloads run from creation on.
   */
  start(): Promise<void>;
  /** Reloads sources and mappings now (after an admin change on this instance). */
  reload(): Promise<void>;
  /**
   * Points an environment at a database after checking it can replicate; `names` are its own
   * slot and publication (null: derived). Throws BAD_USER_INPUT (unreachable, bad or conflicting
   * names) or MISCONFIGURED (wal_level, role), with `details.field`.
   */
  setSource(scope: EnvScope, databaseUrl: string, names?: SourceNames): Promise<CdcSourceRecord>;
  removeSource(scope: EnvScope): Promise<boolean>;
  /** The mapping that defines `model` in an environment (its module gives the permission). */
  modelMapping(scope: EnvScope, model: string): DomainMapping | undefined;
  /** Where `model`'s rows are read from (`records`): its mapping and its environment's source database. */
  modelSource(scope: EnvScope, model: string): Promise<ModelSource | undefined>;
  /** The mapping's warnings (`checkMappingWarnings`: saved anyway). @throws BAD_USER_INPUT naming what to fix when it does not fit its table. */
  checkMapping(scope: EnvScope, mapping: DomainMapping): Promise<readonly string[]>;
  /** The reader of an environment's source, as this instance knows it. */
  status(scope: EnvScope): Promise<CdcSourceStatus | undefined>;
  /** Drops another Tributary slot of the environment's source database (`other-slot-drop.ts`); false when there is none so named. */
  dropSlot(scope: EnvScope, slotName: string): Promise<boolean>;
  /** The readers this instance leads, as last inspected (for metrics). */
  leading(): CdcSourceStatus[];
  /** The WAL-mode outboxes this instance reads, as last inspected (for metrics). */
  leadingOutboxes(): WalOutboxFigures[];
  close(): Promise<void>;
}

export interface EnvScope {
  readonly app: string;
  readonly env: string;
}

/** A model's table and the database it lives in. */
export interface ModelSource {
  readonly mapping: DomainMapping;
  readonly connections: SourceConnections;
  /** The database's id, as WAL events carry it (`WalTransaction.source`). */
  readonly sourceId: string;
}

export interface SourceNames {
  readonly slotName?: string | null;
  readonly publicationName?: string | null;
}

export interface CdcServiceOptions {
  readonly store: CdcStore;
  readonly router: EventRouter;
  readonly log: EventLog;
  readonly logger: Logger;
  /** Makes the connections of a source URL (e.g. `createSourceConnections`); the service disposes them. */
  readonly connect: SourceConnectionFactory;
  /** Makes the connections of a WAL-mode outbox's URL for its table statements, with the outbox pool's limits; disposed here too. */
  readonly connectOutbox: SourceConnectionFactory;
  /** Command connection for the readers' leader election; absent: this instance reads every source. */
  readonly redis: Redis | undefined;
  /** The process's SUBSCRIBE connection, shared by the elections' release signals. @default each election opens its own */
  readonly subscriber?: Redis | undefined;
  readonly keyPrefix: string;
  /** Leader election timings of every source's reader. @default the election's defaults */
  readonly election?: CdcSourceOptions['election'];
  /** How often sources and mappings are checked for changes, in ms. */
  readonly reloadIntervalMs: number;
  /** How long raw changes are kept, in ms. */
  readonly rawRetentionMs: number;
  /** How often readers are inspected (each on a timer of its own, `cdc-source.ts`), outbox figures saved and raw changes pruned, in ms. @default 5000 */
  readonly housekeepingIntervalMs?: number;
  /** Counts rows that matched a mapping but could not be routed safely. @default no metrics */
  readonly metrics?: Pick<Metrics, 'cdcUnroutable' | 'outboxRouted' | 'outboxDead'>;
  /** The outboxes read in WAL mode. @default none */
  readonly outboxes?: WalOutboxCatalog;
}

const HOUSEKEEPING_MS = 5000;
/** Longest a load that left something out stands before it is redone, in ms. */
const INCOMPLETE_RETRY_MS = 60_000;
/** Raw changes deleted per statement, and statements per housekeeping pass at most (500,000 rows per pass). */
const PRUNE_LIMITS = { batch: 10_000, batches: 50 };

export function createCdcService(options: CdcServiceOptions): CdcService {
  const { store } = options;
  const logger = componentLogger(options.logger, 'cdc');
  const signals = options.subscriber && createReleaseSignals(options.subscriber, logger);
  // An identity learned in the background: the next reload loads everything again.
  const endpoints = createSourceEndpoints(options.connect, { onSettled: () => (loaded = undefined) });
  const catalogs = createSourceCatalogs();
  // The login that set the outbox, not the reader's: its search path names the table `setOutboxSource` checked.
  const outboxEndpoints = createSourceEndpoints(options.connectOutbox);
  /** By the database's identity key. */
  const sources = new Map<string, { readonly url: string; readonly names: ReplicationNames; readonly source: CdcSource }>();
  /** By `app/env`: the environment's mappings. */
  let environments = new Map<string, readonly DomainMapping[]>();
  /** By `app/env`: the environment's source URL. */
  let sourceUrls = new Map<string, string>();
  /** The configuration the last load applied; a load that left something out is redone from `retryAt` (ms since the epoch). */
  let loaded: { readonly current: string; readonly resolved: boolean; readonly retryAt: number } | undefined;
  let outboxFigures: WalOutboxFigures[] = [];
  let lastOutboxReport = Date.now();
  let lastReload: Promise<void> = Promise.resolve();
  let closed = false;
  const coalescer = createKeyedCoalescer();
  /** The deployment's names, read once (a load needs them first; a failed read is tried again by the next). */
  let naming: DeploymentNaming | undefined;
  const namingOf = async (): Promise<DeploymentNaming> => (naming ??= deploymentNaming(await store.deployment()));
  const connectionsOf = (url: string) => endpoints.connectionsOf(url);
  // Notes are settled by loads only, which read the naming first.
  const derivedNames = (identity: DatabaseIdentity) => (naming ? naming.derived(identity) : defaultReplicationNames(identity));
  const publicationRemoval = { endpoints, store, outboxes: options.outboxes, logger, namesOf: (identity: DatabaseIdentity, source: CdcSourceRecord) => namesOf(derivedNames(identity), [source]) };
  const retired = createRetiredSlots({ connectionsOf, identityOf: (url) => knownDatabase(endpoints, url), derivedNames, store, logger });

  const envKey = (scope: EnvScope) => `${scope.app}/${scope.env}`;
  /** Disposes the connections of URLs no environment, reader or slot still to drop uses. */
  const releaseEndpoints = (inUse: Iterable<string>) => endpoints.release([...inUse, ...[...sources.values()].map((entry) => entry.url), ...retired.urls()]);
  /** Settles the retired slots (only after a load that reached every database: it alone says which are claimed). */
  const dropRetired = (notes: readonly RetiredSlotNote[]) => retired.drop(notes, (slot) => slotOwner(sources.get(slot.database), slot.slotName, options.redis !== undefined));

  const load = async (): Promise<void> => {
    const deployment = await namingOf();
    // Before the configuration: a note is saved with the change that retires its slot, which this load then sees.
    const notes = await retired.list();
    const outboxRows = (await options.outboxes?.list()) ?? [];
    const current = `${await store.version()} ${JSON.stringify(outboxRows)}`;
    if (loaded?.current === current && Date.now() < loaded.retryAt) {
      if (loaded.resolved && (await dropRetired(notes))) await releaseEndpoints([...sourceUrls.values(), ...outboxRows.map((row) => row.databaseUrl)]);
      return;
    }
    const [sourceRows, mappingRows] = await Promise.all([store.listSources(), store.listMappings()]);
    const byEnv = new Map<string, StoredMapping[]>();
    for (const row of mappingRows) byEnv.set(envKey(row), [...(byEnv.get(envKey(row)) ?? []), row]);
    const nextEnvironments = new Map(sourceRows.map((row) => [envKey(row), (byEnv.get(envKey(row)) ?? []).map((m) => m.mapping)]));
    // Environments per database; one not reached yet is retried in the background.
    const outboxSources = outboxRows.map((row) => ({ ...row, connections: outboxEndpoints.connectionsOf(row.databaseUrl) }));
    const { groups, complete: resolved } = await groupByDatabase(endpoints, sourceRows, outboxSources, logger);
    let complete = resolved;
    for (const [key, entry] of sources) {
      const group = groups.get(key);
      const names = group && namesOf(deployment.derived(group.identity), group.rows);
      // A reader keeps the URL it was made with; once no environment or outbox names it (new
      // credentials, the environment removed), it is made again on one in use, on the same slot
      // (nothing retired): on the old URL, its next connect would fail once that login is revoked.
      const urlInUse = group !== undefined && [...group.rows, ...group.outboxes].some((row) => row.databaseUrl === entry.url);
      if (names && sameNames(entry.names, names) && urlInUse) continue;
      if (names && sameNames(entry.names, names)) logger.info({ source: entry.source.id }, 'the URL the CDC reader used is no longer configured: restarting it on the current one');
      sources.delete(key);
      await entry.source.stop();
      // Noted by every instance, leading or not: changes that no `setSource` saw (an outbox removed) retire slots too.
      if (names?.slotName !== entry.names.slotName) await retired.retire({ database: key, url: entry.url, slotName: entry.names.slotName });
    }
    // Each database on its own: one whose catalog cannot be read holds up no other's reader.
    const setUp = async (key: string, { identity, rows, outboxes }: SourceGroup<WalOutboxSource & WalOutboxBinding>) => {
      const url = sources.get(key)?.url ?? rows[0]?.databaseUrl ?? outboxes[0]!.databaseUrl;
      const environments = rows.map((row) => ({ scope: row, mappings: nextEnvironments.get(envKey(row))! }));
      const read = (mappings: readonly DomainMapping[]) => endpoints.guarded(url, (connections) => describeMappedTables(connections, mappings));
      const { bindings, error } = await catalogs.bindingsOf(key, environments, read);
      if (error !== undefined) {
        complete = false;
        logger.warn({ err: error, source: sourceIdOf(identity) }, 'could not read the source catalog: its last entries are kept');
      }
      const existing = sources.get(key);
      if (existing) {
        existing.source.setBindings(bindings, outboxes);
        return;
      }
      const names = namesOf(deployment.derived(identity), rows);
      const slotFamily = defaultReplicationNames(identity).publicationName;
      const source = createCdcSource({
        ...options,
        ...(signals && { signals }),
        id: sourceIdOf(identity),
        connections: endpoints.connectionsOf(url),
        names,
        deployment,
        ownsPublication: names.publicationName === slotFamily,
        slotFamily,
        logger,
        bindings,
        outboxes,
        ...(options.outboxes && { outboxRetentionMs: options.outboxes.retentionMs }),
        inspectIntervalMs: options.housekeepingIntervalMs ?? HOUSEKEEPING_MS,
      });
      sources.set(key, { url, names, source });
      await source.start();
    };
    await Promise.all([...groups].map(([key, group]) => setUp(key, group)));
    if (resolved) catalogs.retain(groups.keys());
    environments = nextEnvironments;
    sourceUrls = new Map(sourceRows.map((row) => [envKey(row), row.databaseUrl]));
    if (resolved) await dropRetired(notes);
    await releaseEndpoints([...sourceRows, ...outboxRows].map((row) => row.databaseUrl));
    await outboxEndpoints.release(outboxRows.map((row) => row.databaseUrl));
    // What was left out is loaded again once a URL that failed may be tried again, or once an
    // attempt still under way ends (`onSettled`); the same configuration is not read meanwhile.
    loaded = { current, resolved, retryAt: complete ? Infinity : Math.min(endpoints.nextRetryAt(), Date.now() + INCOMPLETE_RETRY_MS) };
  };

  /** Measures the WAL-mode outboxes this instance reads and saves their figures for `outboxStatus`. */
  const reportOutboxes = async () => {
    const now = Date.now();
    const seconds = (now - lastOutboxReport) / 1000;
    lastOutboxReport = now;
    const figures: WalOutboxFigures[] = [];
    for (const { source } of sources.values()) figures.push(...(await source.inspectOutboxes()));
    outboxFigures = figures;
    for (const entry of figures) {
      await options.outboxes?.report(entry, seconds).catch((error: unknown) => logger.warn({ err: error }, 'outbox figures could not be saved'));
    }
  };

  /** Runs a load that starts after this call (one queued behind a running one serves every caller meanwhile). */
  const reload = (): Promise<void> => (lastReload = coalescer.request('load', load));

  /** Each step whatever the others did: raw changes are pruned even while the reload fails. */
  const housekeeping = async () => {
    try {
      await reload();
      await reportOutboxes();
    } catch (error) {
      logger.warn({ err: error }, 'CDC housekeeping failed');
    }
    await pruneExpiredRawChanges(store, new Date(Date.now() - options.rawRetentionMs), PRUNE_LIMITS);
  };

  const reloadTimer = setInterval(() => {
    if (!closed) reload().catch((error: unknown) => logger.warn({ err: error }, 'CDC reload failed'));
  }, options.reloadIntervalMs);
  reloadTimer.unref();
  /** The pass under way: a tick while it runs (a long prune) is skipped, not run beside it. */
  let housekeepingPass: Promise<void> | undefined;
  const housekeepingTimer = setInterval(() => {
    if (closed || housekeepingPass) return;
    housekeepingPass = housekeeping()
      .catch((error: unknown) => logger.warn({ err: error }, 'raw changes could not be pruned'))
      .finally(() => (housekeepingPass = undefined));
  }, options.housekeepingIntervalMs ?? HOUSEKEEPING_MS);
  housekeepingTimer.unref();

  return {
    start: reload,
    reload,

    async setSource(scope, databaseUrl, names = {}) {
      const wanted = checkedNames(names);
      let identity: DatabaseIdentity;
      try {
        identity = await endpoints.connectionsOf(databaseUrl).withClient(async (client) => {
          await assertLogicalReplicationAllowed(client);
          return identifyWarningOfPublication(client, wanted.publicationName, logger, scope);
        });
        endpoints.noteIdentity(databaseUrl, identity);
      } catch (error) {
        await releaseEndpoints([...(await store.listSources()).map((row) => row.databaseUrl)]);
        if (isTributaryError(error)) throw new TributaryError(error.code, error.message, { cause: error, details: { ...error.details, field: 'databaseUrl' } });
        const message = error instanceof Error ? error.message : String(error);
        if (isDatabaseUnreachable(error)) throw new TributaryError(ErrorCode.UNAVAILABLE, `Cannot reach the database right now: ${message}; retry shortly`, { cause: error, details: { field: 'databaseUrl' } });
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, `Cannot connect to the database: ${message}`, { cause: error, details: { field: 'databaseUrl' } });
      }
      const others = (await store.listSources()).filter((other) => envKey(other) !== envKey(scope));
      await assertNamesAgree(wanted, identity, others, (url) => endpoints.knownIdentity(url, IDENTITY_WAIT_MS), (await namingOf()).derived(identity));
      const saved = await store.setSource(scope.app, scope.env, databaseUrl, wanted, await previousDatabase(endpoints, await store.getSource(scope.app, scope.env)));
      await reload();
      return saved;
    },

    async removeSource(scope) {
      const source = await store.getSource(scope.app, scope.env);
      const removed = await store.removeSource(scope.app, scope.env, await previousDatabase(endpoints, source));
      await reload();
      if (source) await dropUnusedPublication(publicationRemoval, source).catch((error: unknown) => logger.warn({ err: error }, 'the publication of the removed CDC source could not be checked'));
      return removed;
    },

    modelMapping(scope, model) {
      return environments.get(envKey(scope))?.find((mapping) => mapping.model === model);
    },

    async modelSource(scope, model) {
      const mapping = environments.get(envKey(scope))?.find((candidate) => candidate.model === model);
      const url = sourceUrls.get(envKey(scope));
      if (!mapping || url === undefined) return undefined;
      const sourceId = sourceIdOf(await endpoints.identityOf(url));
      return { mapping, connections: endpoints.connectionsOf(url), sourceId };
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
      // Every environment on one database uses the same names (`setSource` sees to it).
      const publicationOf = (identity: DatabaseIdentity) => namesOf(defaultReplicationNames(identity), [source]).publicationName;
      const checked = await endpoints.connectionsOf(source.databaseUrl).withClient((client) => checkSource(client, mapping, publicationOf, problems.length === 0)).catch((error: unknown) => {
        throw isTributaryError(error) ? error : new TributaryError(ErrorCode.UNAVAILABLE, 'The CDC source database cannot be reached to check the mapping; retry shortly', { cause: error });
      });
      problems.push(...checked.problems);
      if (problems.length > 0) {
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, `Mapping "${mapping.name}" cannot be saved: ${problems.join('; ')}`, {
          details: { field: 'mapping', problems },
        });
      }
      return checked.warnings;
    },

    async status(scope) {
      const source = await store.getSource(scope.app, scope.env);
      if (!source) return undefined;
      let identity: DatabaseIdentity;
      try {
        identity = await endpoints.identityOf(source.databaseUrl);
      } catch (error) {
        return { ...idleStatus('', { slotName: source.slotName, publicationName: source.publicationName }), state: 'failed', lastError: `the source database cannot be reached: ${error instanceof Error ? error.message : String(error)}` };
      }
      const local = sources.get(identityKey(identity));
      const localStatus = local?.source.status();
      if (localStatus?.leading) return localStatus;
      // Another instance leads: what it last wrote.
      const id = sourceIdOf(identity);
      return followerStatus(id, local?.names ?? namesOf((await namingOf()).derived(identity), [source]), await store.getStatus(id), localStatus?.lastError ?? null);
    },

    dropSlot: (scope, slotName) => dropOtherSlot({ store, connectionsOf, identityOf: (url) => endpoints.identityOf(url), naming: namingOf, logger }, scope, slotName),

    leading() {
      return [...sources.values()].map(({ source }) => source.status()).filter((status) => status.leading);
    },

    leadingOutboxes: () => outboxFigures,

    async close() {
      closed = true;
      clearInterval(reloadTimer);
      clearInterval(housekeepingTimer);
      await lastReload.catch(() => undefined);
      await housekeepingPass;
      await Promise.all([...sources.values()].map(({ source }) => source.stop()));
      sources.clear();
      // Its listeners off the shared subscriber, which the clients close after (a close seen as an outage otherwise).
      await signals?.close();
      await endpoints.dispose();
      await outboxEndpoints.dispose();
    },
  };
}
