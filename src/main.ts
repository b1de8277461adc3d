/**
 * Composition root: configuration → clients → metrics → the subsystems of this process's role.
 * The only place that decides which clients exist (`start/clients.ts` builds them); every
 * subsystem receives `{ config, clients, metrics, logger }` and returns something disposable.
 * Run directly (`npm start`, `npm run workers`), it also installs the signal handlers.
 */
import { ConfigError, loadConfig, type Config, type Role } from './config.ts';
import { createCleanupStack } from './cleanup-stack.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { startCdc } from './start/cdc.ts';
import { createClients } from './start/clients.ts';
import { describeFailure } from './start/failure.ts';
import { startDashboard } from './start/dashboard.ts';
import { listen, readinessChecks, type Listening } from './start/listen.ts';
import { startPipeline } from './start/pipeline.ts';
import { startServer, type ServerStats } from './start/server.ts';
import type { StartContext } from './start/subsystem.ts';
import { startSync } from './start/sync.ts';
import { startWorkers } from './start/workers.ts';

export interface Tributary extends Listening {
  readonly role: Role;
  /** Live counts of the GraphQL server (zero in the workers role). */
  stats(): ServerStats;
  /** Graceful shutdown: stop accepting, close sockets with 1001, dispose everything. Idempotent. */
  dispose(): Promise<void>;
  /** The shutdown step `dispose()` is in (`server › http server`); undefined when it is not running. */
  shutdownStep(): string | undefined;
}

export interface StartOptions {
  readonly logger?: Logger;
  /** The clock of time windows (analytics minutes). @default Date.now */
  readonly now?: () => number;
}

const NO_SERVER: ServerStats = { connections: 0, channelMembers: 0, streams: 0, cohorts: 0, subscribers: 0 };

export async function startTributary(config: Config, options: StartOptions = {}): Promise<Tributary> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const cleanup = createCleanupStack(logger);
  try {
    const clients = await createClients(config, logger);
    cleanup.push('clients', () => clients.dispose());
    const context: StartContext = { config, clients, metrics: createMetrics(), logger, now: options.now ?? Date.now };

    const pipeline = await startPipeline(context);
    cleanup.push('pipeline', () => pipeline.dispose());
    const dashboard = startDashboard(context, pipeline);
    cleanup.push('dashboard', () => dashboard.dispose());

    let listening: Listening & { stats(): ServerStats };
    if (config.role === 'workers') {
      const ops = await listen(context, { readiness: readinessChecks(clients) });
      cleanup.push('http server', () => ops.dispose());
      listening = { url: ops.url, port: ops.port, stats: () => NO_SERVER };
    } else {
      const sync = startSync(context, pipeline);
      cleanup.push('sync', () => sync.dispose());
      const cdc = await startCdc(context, pipeline);
      cleanup.push('cdc', () => cdc.dispose());
      const server = await startServer(context, { pipeline, dashboard, sync, cdc });
      cleanup.push('server', () => server.dispose());
      listening = server;
    }
    if (config.role !== 'server') {
      const workers = await startWorkers(context, { pipeline, dashboard });
      cleanup.push('workers', () => workers.dispose());
    }

    const url = config.role === 'workers' ? listening.url : `${listening.url}/graphql`;
    logger.info({ url, role: config.role, database: clients.db.kind, redis: clients.redis !== undefined }, 'Tributary is listening');
    return {
      role: config.role,
      url: listening.url,
      port: listening.port,
      stats: () => listening.stats(),
      dispose: () => cleanup.run(),
      shutdownStep: () => cleanup.current(),
    };
  } catch (error) {
    await cleanup.run();
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
  const logger = createLogger({ level: config.logLevel });
  const tributary = await startTributary(config, { logger });

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      // The step still running is what held the shutdown; the ones after it are skipped.
      logger.error({ step: tributary.shutdownStep(), timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    tributary.dispose().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`Tributary failed to start: ${describeFailure(error)}\n`);
    process.exit(1);
  });
}
