import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** @default 'info' */
  readonly level?: LogLevel;
  /** Where JSON lines go. @default standard output */
  readonly destination?: pino.DestinationStream;
}

/**
 * The one root logger; modules take a child (`componentLogger(logger, 'ws')`) by injection.
 * Tokens never reach the logs: authorization values are redacted wherever they appear. Neither do
 * a failed Redis command's arguments (ioredis puts them on its errors): an `AUTH`'s are the
 * password, other commands' the events and documents they carried.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'tributary' },
      redact: {
        paths: ['authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization', 'token', 'err.command.args', '*.err.command.args'],
        censor: '[redacted]',
      },
    },
    options.destination,
  );
}

/**
 * Standard output, each line written as it is logged — the process's destination (`main.ts`). With
 * pino's buffered default, a write still in flight when `process.exit` came (every way out of the
 * process ends so) was left behind, and the exit's own flush wrote the lines after it first, or
 * alone: a shutdown's last steps and `stopped` came out before the steps they followed, or not at
 * all, when the reader of standard output lagged.
 */
export function standardOutput(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: true });
}

/**
 * A module's child logger, named `component`. Under a logger that already names a component, its
 * name goes to `subcomponent` (or adds nothing when it is the same): pino writes a key bound twice
 * twice — `{"component":"cdc",…,"component":"wal-reader"}` — and log shippers keep one of the two,
 * or reject the line.
 */
export function componentLogger(parent: Logger, component: string, bindings: Readonly<Record<string, unknown>> = {}): Logger {
  const bound: Readonly<Record<string, unknown>> = parent.bindings();
  if (bound['component'] === undefined) return parent.child({ component, ...bindings });
  const own = bound['component'] === component || bound['subcomponent'] !== undefined ? {} : { subcomponent: component };
  return parent.child({ ...own, ...bindings });
}
