/**
 * Composition root: configuration → clients → metrics → the subsystems of this process's role.
 * `start/clients.ts` opens the shared clients — the platform database, migrated there before any
 * subsystem starts, and Redis's command and subscriber connections; every subsystem receives
 * `{ config, clients, metrics, logger }` and returns something disposable. BullMQ's queue and
 * worker open Redis connections of their own (blocking commands; see `start/clients.ts`).
 * Run directly (`npm start`, `npm run workers`), it also installs the signal handlers.
 */
import { ConfigError, loadConfig, SETTING_NAMES, type Config, type Role } from './config.ts';
import { unknownSettings } from './config-unknown.ts';
import { createCleanupStack } from './cleanup-stack.ts';
import { createLogger, standardOutput, type Logger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { startCdc } from './start/cdc.ts';
import { createClients } from './start/clients.ts';
import { startFailureText } from './start/failure.ts';
import { startDashboard } from './start/dashboard.ts';
import { listen, readinessChecks, startupCheck, type Listening } from './start/listen.ts';
import { startPipeline } from './start/pipeline.ts';
import { startServer, type ServerStats } from './start/server.ts';
import { createShutdownDeadline, ShutdownShare } from './start/shutdown-deadline.ts';
import type { StartContext } from './start/subsystem.ts';
import { startSync } from './start/sync.ts';
import { startWorkers } from './start/workers.ts';

export interface Tributary extends Listening {
  readonly role: Role;
  /** Live counts of the GraphQL server (zero in the workers role). */
  stats(): ServerStats;
  /**
   * Graceful shutdown within SHUTDOWN_TIMEOUT_MS of the call: stop accepting (`/ready` 503, the
   * listener closed, sockets closed with 1001), then stop the workers, then dispose the rest in
   * reverse start order, the database last. Idempotent.
   */
  dispose(): Promise<void>;
  /** The shutdown step `dispose()` is in (`workers`, `server › dispatcher`); undefined when it is not running. */
  shutdownStep(): string | undefined;
}

export interface StartOptions {
  readonly logger?: Logger;
  /** The clock of time windows (analytics minutes). @default Date.now */
  readonly now?: () => number;
  /**
   * Stops a start under way (a signal that came before it finished): at the end of the step in
   * progress, what has started is disposed — the shutdown's time counted from the abort — and the
   * start rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

const NO_SERVER: ServerStats = { connections: 0, channelMembers: 0, streams: 0, cohorts: 0, subscribers: 0, joining: 0 };

export async function startTributary(config: Config, options: StartOptions = {}): Promise<Tributary> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const cleanup = createCleanupStack(logger);
  const deadline = createShutdownDeadline(config.shutdownTimeoutMs, logger);
  // Each step gets what is left until its share of the shutdown's time (shutdown-deadline.ts).
  const undo = (name: string, share: number, run: () => Promise<void>) => cleanup.push(name, () => deadline.bounded(name, share, run));
  const dispose = () => {
    deadline.start();
    return cleanup.run();
  };
  options.signal?.addEventListener('abort', () => deadline.start(), { once: true });
  /** Between steps: an aborted start goes no further (the catch below disposes what has started). */
  const checkpoint = () => options.signal?.throwIfAborted();
  try {
    checkpoint();
    // The platform database (its pending migrations applied here), then Redis.
    const clients = await createClients(config, logger);
    undo('clients', ShutdownShare.DATABASE, () => clients.dispose());
    checkpoint();
    const context: StartContext = { config, clients, metrics: createMetrics(), logger, now: options.now ?? Date.now };

    const pipeline = await startPipeline(context);
    undo('pipeline', ShutdownShare.BEFORE_DATABASE, () => pipeline.dispose());
    checkpoint();
    const dashboard = startDashboard(context, pipeline);
    undo('dashboard', ShutdownShare.BEFORE_DATABASE, () => dashboard.dispose());

    let listening: Listening & { stats(): ServerStats };
    let stopAccepting: () => Promise<void>;
    const workersStarted = startupCheck('workers');
    if (config.role === 'workers') {
      const ops = await listen(context, { readiness: [...readinessChecks(clients), workersStarted] });
      undo('http server', ShutdownShare.BEFORE_DATABASE, () => ops.dispose());
      listening = { url: ops.url, port: ops.port, stats: () => NO_SERVER };
      stopAccepting = () => ops.dispose();
    } else {
      const sync = startSync(context, pipeline);
      undo('sync', ShutdownShare.BEFORE_DATABASE, () => sync.dispose());
      const cdc = await startCdc(context, pipeline);
      undo('cdc', ShutdownShare.BEFORE_DATABASE, () => cdc.dispose());
      checkpoint();
      const server = await startServer(context, { pipeline, dashboard, sync, cdc });
      undo('server', ShutdownShare.BEFORE_DATABASE, () => server.dispose());
      listening = server;
      stopAccepting = () => server.stopAccepting(deadline.msUntil(ShutdownShare.SOCKETS));
    }
    if (config.role !== 'server') {
      const workers = await startWorkers(context, { pipeline, dashboard });
      undo('workers', ShutdownShare.WORKERS, () => workers.dispose());
      workersStarted.started();
    }
    // Registered last, so it runs first: the process takes no new work — /ready 503, the listener
    // closed, sockets closed with 1001 — before its workers stop, not while they finish what they
    // hold (a webhook attempt may take half the shutdown's time). The rest goes in reverse start order.
    undo('stop accepting', ShutdownShare.STOP_ACCEPTING, stopAccepting);
    checkpoint();

    const url = config.role === 'workers' ? listening.url : `${listening.url}/graphql`;
    logger.info({ url, role: config.role, database: clients.db.kind, redis: clients.redis !== undefined }, 'Tributary is listening');
    return {
      role: config.role,
      url: listening.url,
      port: listening.port,
      stats: () => listening.stats(),
      dispose,
      shutdownStep: () => cleanup.current(),
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Loads the configuration or exits with its one-line message. */
function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const config = configOrExit();
  // Each line written as it is logged: the last ones before an exit are never lost or reordered.
  const logger = createLogger({ level: config.logLevel, destination: standardOutput() });
  for (const { name, suggestion } of unknownSettings(process.env, SETTING_NAMES)) {
    logger.warn({ variable: name, suggestion }, suggestion ? `${name} is not a setting of Tributary's (ignored): did you mean ${suggestion}?` : `${name} is not a setting of Tributary's (ignored)`);
  }
  // Installed before the start: in role `all` the server takes requests before the workers have
  // started, and a signal then must stop the process gracefully too, not kill it where it stands.
  const startup = new AbortController();
  let tributary: Tributary | undefined;
  let stopping = false;
  const exitOnceStopped = (stopped: Promise<void>) =>
    stopped.then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      // The step still running is what held the shutdown; the ones after it are skipped.
      logger.error({ step: tributary ? tributary.shutdownStep() : 'start', timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    // Still starting: the start disposes what it has started, at the end of its step in progress, and rejects.
    if (tributary) void exitOnceStopped(tributary.dispose());
    else startup.abort();
  };
  // `on`, not `once`: a terminal's Ctrl-C reaches npm and node alike, and npm passes its SIGINT
  // on: a second signal must not kill the process halfway through its shutdown (`stop` runs once;
  // SHUTDOWN_TIMEOUT_MS bounds it).
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    tributary = await startTributary(config, { logger, signal: startup.signal });
  } catch (error) {
    if (!startup.signal.aborted) throw error;
    // Stopped during the start: what had started is disposed already (a step that failed meanwhile is logged).
    if (error !== startup.signal.reason) logger.error({ err: error }, 'start failed while stopping');
    void exitOnceStopped(Promise.resolve());
  }
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`Tributary failed to start: ${startFailureText(error)}\n`);
    process.exit(1);
  });
}
