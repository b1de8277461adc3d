/**
 * The shape every subsystem's start function shares: `start…(context, parts)` receives the
 * configuration, the clients built once in `main.ts`, the one `Metrics` and a logger, plus the
 * parts of subsystems started before it, and returns what it offers with a `dispose()`.
 * `main.ts` disposes subsystems in reverse start order, once the process has stopped taking work
 * (the server's listener and sockets go first), within one shutdown deadline (`shutdown-deadline.ts`).
 */
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Clients } from './clients.ts';

export interface StartContext {
  readonly config: Config;
  readonly clients: Clients;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * The clock of time windows (analytics minutes), in ms since the epoch: `Date.now` unless a
   * test moves time forward instead of waiting for a minute to end.
   */
  readonly now: () => number;
}

export interface Disposable {
  /** Stops what the subsystem runs and releases what it holds. Idempotent; never throws. */
  dispose(): Promise<void>;
}
