/**
 * The `outbox` workload's writer: an application committing one row per transaction, one
 * transaction at a time, on a connection of its own in the runner's process. What the INSERT is
 * (an outbox row through `enqueueOutboxEvent`, or a row of an ordinary table that CDC maps) is the
 * caller's, so every arm pays the same commit around it. Each row carries `seq` and the time its
 * INSERT was due by the schedule (`sentAt`, see `runPaced`: a writer held up by a slow commit does
 * not hide the wait), which the fan-out load client reads from the raw frame.
 *
 * The INSERT is its own transaction (autocommit), as `row-writer.ts`'s: an explicit BEGIN and
 * COMMIT around it are two more round trips, and with them one connection could not offer 1,000
 * commits a second on a loaded 2-core machine. Commit → subscriber latency starts at the commit
 * either way; what runs before it in the transaction is the application's, not the pipeline's.
 *
 * It has the publisher's interface (`Publisher`), so a fan-out session drives it like the HTTP
 * publisher: paced by `runPaced`, one transaction in flight.
 */
import pg from 'pg';
import { clockMillis } from './fanout-payload.ts';
import { runPaced, type Publisher } from './publisher.ts';

/** Inserts row `seq`, due at `sentAt`, on `client` (autocommit: one transaction); the row must carry `seq` and `sentAt` to the subscribers. */
export type InsertRow = (client: pg.Client, seq: number, sentAt: number) => Promise<unknown>;

export interface CommitWriterOptions {
  /** `postgres://…` of the application's database. */
  readonly databaseUrl: string;
  readonly insert: InsertRow;
  /** Shown in `pg_stat_activity`. @default 'bench-commit-writer' */
  readonly applicationName?: string;
}

export interface CommitWriter extends Publisher {
  /** Runs `use` on the writer's connection once it is connected (e.g. a bulk transaction). */
  withClient<T>(use: (client: pg.Client) => Promise<T>): Promise<T>;
}

export function createCommitWriter(options: CommitWriterOptions): CommitWriter {
  const client = new pg.Client({ connectionString: options.databaseUrl, application_name: options.applicationName ?? 'bench-commit-writer' });
  // A server gone away fails the next transaction, which is reported; it must not crash the runner.
  client.on('error', () => {});
  let connecting: Promise<void> | undefined;
  const ready = () => (connecting ??= client.connect().then(() => undefined));

  /** One transaction for row `seq`, due at `dueAt`; resolves with undefined once committed, with what went wrong otherwise. */
  const send = async (seq: number, dueAt: number): Promise<string | undefined> => {
    try {
      await options.insert(client, seq, dueAt);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  };

  return {
    async connect() {
      await ready();
    },
    async publishOne(seq) {
      await ready();
      const failure = await send(seq, clockMillis());
      if (failure !== undefined) throw new Error(`transaction failed: ${failure}`);
    },
    async run(run) {
      await ready();
      return runPaced(run, send);
    },
    async withClient(use) {
      await ready();
      return use(client);
    },
    close() {
      client.end().catch(() => undefined);
    },
  };
}
