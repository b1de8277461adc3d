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
 * The one root logger; modules take a child (`logger.child({ component: 'ws' })`) by injection.
 * Tokens never reach the logs: authorization values are redacted wherever they appear.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'tributary' },
      redact: {
        paths: ['authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization', 'token'],
        censor: '[redacted]',
      },
    },
    options.destination,
  );
}
