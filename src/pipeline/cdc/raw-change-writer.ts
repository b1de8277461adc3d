import type { Logger } from '../../logger.ts';
import type { RawChangeLog, RawChangeRow } from './raw-change-log.ts';

/**
 * Keeps raw changes in `cdc_events` off the reader's path: rows are written in batches, at most
 * `flushIntervalMs` after they arrive. It is an audit trail, not the delivery path (events are in
 * the log before a position is confirmed), so a failed batch is logged and dropped. Bounded: when
 * `maxBufferedRows` wait, `add` waits for a flush (the reader slows down rather than grow memory).
 */
export interface RawChangeWriter {
  add(rows: readonly RawChangeRow[]): Promise<void>;
  /** Writes what is buffered, then stops. Idempotent. */
  close(): Promise<void>;
}

export interface RawChangeWriterOptions {
  readonly store: RawChangeLog;
  readonly logger: Logger;
  /** @default 200 */
  readonly flushIntervalMs?: number;
  /** Rows per INSERT. @default 1000 */
  readonly batchRows?: number;
  /** @default 20000 */
  readonly maxBufferedRows?: number;
}

export function createRawChangeWriter(options: RawChangeWriterOptions): RawChangeWriter {
  const { store, logger } = options;
  const batchRows = options.batchRows ?? 1000;
  const maxBuffered = options.maxBufferedRows ?? 20_000;
  let buffer: RawChangeRow[] = [];
  let writing: Promise<void> | undefined;
  let closed: Promise<void> | undefined;

  const writeAll = async () => {
    while (buffer.length > 0) {
      const batch = buffer.slice(0, batchRows);
      buffer = buffer.slice(batch.length);
      await store.appendRawChanges(batch).catch((error: unknown) => logger.warn({ err: error, rows: batch.length }, 'raw changes not stored'));
    }
  };
  const flush = (): Promise<void> => {
    writing ??= writeAll().finally(() => (writing = undefined));
    return writing;
  };
  const timer = setInterval(() => void flush(), options.flushIntervalMs ?? 200);
  timer.unref();

  return {
    async add(rows) {
      buffer.push(...rows);
      while (buffer.length > maxBuffered) await flush();
    },
    close() {
      closed ??= (async () => {
        clearInterval(timer);
        await writing;
        await flush();
      })();
      return closed;
    },
  };
}
