/**
 * One source database: its WAL is read once (by the elected instance when Redis coordinates
 * several) and every change is turned, by the mappings of each environment that points at this
 * database, into domain events:
 * - on the mapping's topic, with the mapping's payload, for `events(topic: …)` — unless this row
 *   cannot build the topic, which costs that event alone (`binding-events.ts`);
 * - on the model stream `{module}.{model}`, as a model change (operation, id, full record,
 *   commit time), for `changes(model: …)`.
 * Both carry the same id, derived from the source, the change's LSN (and, for the rows of one
 * multi-insert, which share it, the row's index at it) and the mapping, so a change received again after a
 * crash is published again with the same id (delivery is at least once). An update that moves a
 * row to another key or tenant is preceded, on the model stream, by a DELETED of the row where it
 * was (`MappedEvent.former`), under an id derived from the change's.
 * The inserts into the outbox tables read in WAL mode are routed with them (`wal-outboxes.ts`).
 *
 * This file is the reader's lifecycle: who reads (the election), the start retried until the
 * reader streams, the stop, and the readings while it leads. How each transaction is routed — in
 * commit order, a TRUNCATE as a barrier, nothing after a failed one — is `chunk-routing.ts`; the
 * status it reports and saves is built in `reader-status.ts`.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { ErrorCode, TributaryError } from '../../errors.ts';
import { createBackoff, pause } from '../coordination/backoff.ts';
import { createLeaderElection, type LeaderElection, type LeaderElectionOptions, type LeaderLease } from '../coordination/leader-election.ts';
import type { ReleaseSignals } from '../coordination/release-signals.ts';
import type { EventLog } from '../log/event-log.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { CdcBinding } from './cdc-binding.ts';
import type { CdcStore } from './cdc-store.ts';
import { createChunkRouting } from './chunk-routing.ts';
import {
  claimSlot,
  isSlotInUse,
  notedSlotInUse,
  startErrorText,
  UNNAMED_DEPLOYMENT,
  withApplicationName,
  type DeploymentNaming,
} from './deployment-slots.ts';
import { environmentsOf, leadingStatus, statusRecord, stoppedStatus } from './reader-status.ts';
import { renewSourceEpochs, type HistoryBreak } from './source-epochs.ts';
import type { CdcSourceStatus } from './source-names.ts';
import { createWalOutboxes, type WalOutboxBinding, type WalOutboxFigures } from './wal-outboxes.ts';
import { identityKey, type DatabaseIdentity, type ReplicationNames } from './wal/replication-names.ts';
import type { SourceConnections } from './wal/source-connections.ts';
import { createWalReader, type WalReader, type WalReaderStatus } from './wal/wal-reader.ts';

export type { CdcBinding };

export type { CdcSourceStatus } from './source-names.ts';

export interface CdcSource {
  readonly id: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Replaces the mappings (they apply from the next transaction) and the outboxes read in WAL mode. */
  setBindings(bindings: readonly CdcBinding[], outboxes: readonly WalOutboxBinding[]): void;
  status(): CdcSourceStatus;
  /** Reader status with the slot's lag and retained WAL read now (leader only), saved for the other instances and the alert rules. */
  inspect(): Promise<CdcSourceStatus>;
  /** The WAL-mode outboxes' figures, measured now; empty unless this instance reads the slot. */
  inspectOutboxes(): Promise<WalOutboxFigures[]>;
}

export interface CdcSourceOptions {
  /** The database's id (`sourceIdOf` its identity): names its status, leader key and events. */
  readonly id: string;
  /** The database's connections; the caller owns (and disposes) them. */
  readonly connections: SourceConnections;
  readonly names: ReplicationNames;
  /** The deployment reading (its walsenders' name, which of them it may terminate: `deployment-slots.ts`). @default UNNAMED_DEPLOYMENT */
  readonly deployment?: DeploymentNaming;
  /** The publication is Tributary's own (see `WalReaderOptions.ownsPublication`). @default false */
  readonly ownsPublication?: boolean;
  /** The database's base slot name: its other Tributary slots are measured too (`wal/other-slots.ts`). @default none measured */
  readonly slotFamily?: string;
  readonly bindings: readonly CdcBinding[];
  /** Outboxes in this database read in WAL mode. @default none */
  readonly outboxes?: readonly WalOutboxBinding[];
  /** Dead outbox rows are deleted this long after they were set aside, in ms. @default 7 days */
  readonly outboxRetentionMs?: number;
  readonly router: EventRouter;
  readonly log: EventLog;
  readonly store: CdcStore;
  /** The CDC service's logger (its `component` is already bound: binding it again repeats the key in every line). */
  readonly logger: Logger;
  /** Coordinates instances (leader election); absent: this instance always reads. */
  readonly redis: Redis | undefined;
  /** Release signals shared by the process's elections. @default a connection of the election's own */
  readonly signals?: ReleaseSignals;
  readonly keyPrefix: string;
  /** Election timings, in ms (see `leader-election.ts`). @default its defaults: TTL 10 s, heartbeat 3 s, poll 5 s */
  readonly election?: Pick<LeaderElectionOptions, 'ttlMs' | 'heartbeatMs' | 'pollMs'>;
  /** Counts rows that matched a mapping but could not be routed in full (`binding-events.ts`). @default no metrics */
  readonly metrics?: Pick<Metrics, 'cdcUnroutable' | 'outboxRouted' | 'outboxDead'>;
  /** While this instance reads the slot, it is inspected (`inspect()`) this often, in ms. @default never: the caller inspects */
  readonly inspectIntervalMs?: number;
}

/** A source's id: a hash of its database's identity (the same for every URL that reaches it; never a URL, which holds a password). */
export function sourceIdOf(identity: DatabaseIdentity): string {
  return createHash('sha256').update(identityKey(identity)).digest('base64url').slice(0, 16);
}

export function createCdcSource(options: CdcSourceOptions): CdcSource {
  const { id, names, store } = options;
  const logger = options.logger.child({ source: id });
  const deployment = options.deployment ?? UNNAMED_DEPLOYMENT;
  const replicationConnections = withApplicationName(options.connections, deployment.applicationName);
  let outboxBindings = options.outboxes ?? [];
  const outboxes = createWalOutboxes({
    connections: options.connections,
    publicationName: names.publicationName,
    router: options.router,
    logger,
    retentionMs: options.outboxRetentionMs ?? 7 * 24 * 3_600_000,
    ...(options.metrics && { metrics: options.metrics }),
  });
  outboxes.set(options.outboxes ?? []);
  const routing = createChunkRouting({
    source: id,
    bindings: options.bindings,
    outboxes,
    router: options.router,
    log: options.log,
    store,
    logger,
    ...(options.metrics && { metrics: options.metrics }),
  });

  let election: LeaderElection | undefined;
  /** The reader this instance leads, once created (it may still be starting); undefined while not leading. */
  let reader: WalReader | undefined;
  /** The start loop of the reader this instance leads (`runReader`), until it is stopped. */
  let running: { controller: AbortController; done: Promise<void> } | undefined;
  /** Why the reader's last start failed; null once it streams. */
  let lastStartError: string | null = null;
  /** Another reader streamed the slot when this one was to start (`claimSlot`): it may have confirmed changes meanwhile. */
  let slotWasTaken = false;

  /** A new history for this source's streams (`source-epochs.ts`). */
  const epochs = { source: id, slotName: names.slotName, log: options.log, store, logger };
  const renewEpochs = (why: HistoryBreak) => renewSourceEpochs(epochs, routing.bindings, why);

  /**
   * Starts the reader, retrying with a capped backoff until it streams or `signal` aborts (this
   * instance stopped leading, or stopped; `leading` reads its lease from the clock). A walsender of
   * this deployment left on the slot (a previous leader's, whose lease expired) is terminated
   * first; another reader's is not (`claimSlot`).
   */
  const runReader = async (leader: string | null, signal: AbortSignal, leading: () => boolean) => {
    const backoff = createBackoff({ initialMs: RETRY_FIRST_MS, maxMs: RETRY_MAX_MS });
    while (!signal.aborted) {
      try {
        const previous = await store.getStatus(id);
        // Refused earlier (here, or on the instance that led before): what the other confirmed is missing.
        slotWasTaken ||= notedSlotInUse(previous?.lastError);
        const refused = await options.connections.withClient((client) => claimSlot(client, names.slotName, deployment));
        if (refused) throw refused;
        if (signal.aborted) return;
        const next = createWalReader({
          connections: replicationConnections,
          slotName: names.slotName,
          publicationName: names.publicationName,
          tables: () => routing.mappedTables(), // a missing publication gets the tables mapped then (`wal/publication.ts`)
          ownsPublication: options.ownsPublication === true,
          ...(options.slotFamily !== undefined && { slotFamily: options.slotFamily }),
          expectExistingSlot: previous?.lastLsn != null,
          logger,
          handle: routing.handle,
          onSlotCreated: async ({ recreated }) => {
            await renewEpochs(recreated ? 'recreated' : 'created');
            slotWasTaken = false;
          },
          onSlotTaken: async () => {
            // This instance's lease ran out unnoticed (a frozen process): the next leader read on, nothing is missing.
            if (!leading()) throw new TributaryError(ErrorCode.UNAVAILABLE, 'the slot moved on while this instance no longer led its reader');
            await renewEpochs('taken');
          },
          onReady: async () => {
            if (slotWasTaken) await renewEpochs('taken');
            slotWasTaken = false;
            await outboxes.onReady();
          },
        });
        reader = next;
        await next.start();
        lastStartError = null;
        // Saved measured: a status saying `streaming` without figures counts towards `cdc.reader_down` (`cdc-store.ts`).
        const started = await next.inspect().catch(() => next.status());
        // Stopped meanwhile: the next leader's status is not this one's to write.
        if (signal.aborted) return;
        await store.saveStatus({ ...record(started), leader });
        return;
      } catch (error) {
        const failed = reader;
        reader = undefined;
        await failed?.stop();
        const told = lastStartError;
        lastStartError = startErrorText(error);
        if (!isSlotInUse(error)) {
          logger.error({ err: error, attempt: backoff.failures }, 'CDC reader could not start; retrying');
        } else if (lastStartError !== told) {
          logger.warn({ err: error, slot: names.slotName }, 'the replication slot is streamed by another reader: not taking it (MISCONFIGURED); retrying');
        }
        slotWasTaken ||= isSlotInUse(error);
        await store.saveStatus({ ...record(idleStatus()), state: 'failed', lastError: lastStartError, leader }).catch(() => undefined);
        await pause(backoff.next(), signal);
      }
    }
  };

  const startReader = (leader: string | null, lease?: Pick<LeaderLease, 'signal' | 'isValid'>) => {
    const controller = new AbortController();
    lease?.signal.addEventListener('abort', () => controller.abort(), { once: true });
    running = { controller, done: runReader(leader, controller.signal, () => lease?.isValid() ?? true) };
  };

  const stopReader = async () => {
    const current = running;
    running = undefined;
    current?.controller.abort();
    // Stopped before its start is awaited: a start waiting to create the slot (which waits for
    // every transaction open on the source) ends only when the reader cancels it.
    const stopped = reader;
    reader = undefined;
    await stopped?.stop();
    await current?.done;
    await outboxes.suspend();
  };

  /** The status record saved for the others, naming every environment reading this database now. */
  const record = (status: WalReaderStatus) => statusRecord(id, status, environmentsOf([...routing.bindings, ...outboxBindings]));

  const idleStatus = (): CdcSourceStatus => stoppedStatus(id, names, lastStartError);

  const inspect = async (): Promise<CdcSourceStatus> => {
    const current = reader;
    if (!current) return idleStatus();
    // Written only while this instance leads the reader: a former leader's word is not the source's state.
    const save = async (status: WalReaderStatus) => {
      if (reader === current) await store.saveStatus({ ...record(status), leader: election?.holderId ?? null }).catch(() => undefined);
    };
    // A source out of reach: the status says so (`reconnecting` once the stream ended) and why
    // (`lastError`), with its figures unknown rather than those measured before, as if current.
    const status = await current.inspect().catch(async (error: unknown) => {
      await save(current.status());
      throw error;
    });
    await save(status);
    return leadingStatus(id, names, status);
  };

  /**
   * The leader's readings (`inspectIntervalMs`), one at a time, each source's on its own: a source
   * that stopped answering (each reading bounded, `wal/slot-readings.ts`), or the service's other
   * housekeeping, holds up no other source's figures and status.
   */
  let inspecting: Promise<unknown> | undefined;
  const inspections = options.inspectIntervalMs === undefined ? undefined : setInterval(() => {
    if (reader && !inspecting) inspecting = inspect().catch(() => undefined).finally(() => (inspecting = undefined));
  }, options.inspectIntervalMs);
  inspections?.unref();

  return {
    id,
    async start() {
      if (!options.redis) {
        startReader(null);
        return;
      }
      election = createLeaderElection({
        ...options.election,
        redis: options.redis,
        ...(options.signals && { signals: options.signals }),
        key: `${options.keyPrefix}cdc:leader:${id}`,
        logger,
        onElected: (lease) => {
          logger.info({ fencingToken: lease.fencingToken }, 'leading the CDC reader');
          startReader(lease.holderId, lease);
        },
        onDemoted: async (_lease, reason) => {
          logger.info({ reason }, 'no longer leading the CDC reader');
          await stopReader();
        },
      });
      await election.start();
    },

    async stop() {
      clearInterval(inspections);
      await inspecting;
      await election?.stop();
      await stopReader();
      await outboxes.stop();
      await routing.close();
    },

    setBindings(next, nextOutboxes) {
      routing.setBindings(next);
      outboxBindings = nextOutboxes;
      outboxes.set(nextOutboxes);
    },

    status() {
      return reader ? leadingStatus(id, names, reader.status()) : idleStatus();
    },

    inspect,

    async inspectOutboxes() {
      if (reader) return outboxes.inspect();
      // Leading, but the reader keeps failing to start (the database is down, the role lost REPLICATION…).
      return running && lastStartError !== null ? outboxes.failed(lastStartError) : [];
    },
  };
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5000;
