/**
 * Each endpoint's attempts and failures, counted here as they end and added every few seconds to
 * `webhook_attempt_tallies` (migrations/0021): a row per endpoint and 10-second span, which every
 * worker process adds to. The failure-rate alert reads those rows — a few per endpoint for its
 * window — where it had counted the attempt log itself (300,000 rows every 5 s at 1,000 attempts a
 * second).
 *
 * Bounded: a count per endpoint. A write that fails leaves its counts to the next (one that
 * committed but whose answer was lost is added again: the alert's figures can count a few attempts
 * twice); what a process had counted and not written when it died (at most `flushMs` of its
 * attempts) is missing from them — never from the attempt log. Spans older than any alert window
 * are deleted.
 */
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';

export interface AttemptTallies {
  /** An attempt to the endpoint ended; `failed` for every outcome but delivered. */
  count(endpointId: string, failed: boolean): void;
  /** Adds what is counted to the table now. */
  flush(): Promise<void>;
  /** Stops the timer and adds what is left. Idempotent. */
  close(): Promise<void>;
}

export interface AttemptTalliesOptions {
  readonly db: Queryable;
  readonly logger: Logger;
  /** How often counts are added to the table, in ms. @default 2000 */
  readonly flushMs?: number;
}

/** A span is kept this long: more than the longest alert window (ALERTS_WINDOW_SECONDS, 24 h). */
const KEEP_SPANS = '2 days';
/** Old spans are looked for every this many writes. */
const PRUNE_EVERY_FLUSHES = 100;

const ADD = `INSERT INTO webhook_attempt_tallies AS t (endpoint_id, span_start, attempts, failures)
  SELECT u.endpoint_id, to_timestamp(floor(extract(epoch FROM now()) / 10) * 10), u.attempts, u.failures
    FROM unnest($1::text[], $2::int[], $3::int[]) AS u(endpoint_id, attempts, failures)
  ON CONFLICT (span_start, endpoint_id) DO UPDATE SET attempts = t.attempts + excluded.attempts, failures = t.failures + excluded.failures`;

const PRUNE = `DELETE FROM webhook_attempt_tallies WHERE span_start < now() - interval '${KEEP_SPANS}'`;

export function createAttemptTallies(options: AttemptTalliesOptions): AttemptTallies {
  const { db, logger } = options;
  let counted = new Map<string, { attempts: number; failures: number }>();
  let flushes = 0;
  let writing: Promise<void> = Promise.resolve();
  let closed: Promise<void> | undefined;

  const add = (into: Map<string, { attempts: number; failures: number }>, endpointId: string, attempts: number, failures: number) => {
    const tally = into.get(endpointId);
    if (tally) {
      tally.attempts += attempts;
      tally.failures += failures;
    } else into.set(endpointId, { attempts, failures });
  };

  const write = async () => {
    if (counted.size === 0) return;
    const taken = counted;
    counted = new Map();
    // Every process adds to the same rows: each locks them in one order (endpoint id), so that two
    // writes of the same span never wait for each other crosswise (a deadlock, one of them undone).
    const tallies = [...taken].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    try {
      await db.query(ADD, [tallies.map(([endpointId]) => endpointId), tallies.map(([, tally]) => tally.attempts), tallies.map(([, tally]) => tally.failures)]);
    } catch (error) {
      // Kept for the next write, added to what is counted meanwhile.
      for (const [endpointId, tally] of taken) add(counted, endpointId, tally.attempts, tally.failures);
      throw error;
    }
    flushes += 1;
    if (flushes % PRUNE_EVERY_FLUSHES === 0) {
      await db.query(PRUNE).catch((error: unknown) => logger.warn({ err: error }, 'old webhook attempt tallies not deleted; tried again later'));
    }
  };
  // One write at a time: a write waits for the one before it.
  const flush = () => (writing = writing.then(write, write));

  const timer = setInterval(() => {
    flush().catch((error: unknown) => logger.warn({ err: error }, 'webhook attempt tallies not written; added to the next write'));
  }, options.flushMs ?? 2_000);
  timer.unref();

  return {
    count(endpointId, failed) {
      add(counted, endpointId, 1, failed ? 1 : 0);
    },
    flush,
    close() {
      clearInterval(timer);
      closed ??= flush().catch((error: unknown) => logger.warn({ err: error }, 'webhook attempt tallies not written at close'));
      return closed;
    },
  };
}
