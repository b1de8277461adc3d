/**
 * Two announcers of alert changes at once — the server announcing an acknowledgement, the
 * evaluating worker announcing what it just wrote — route each change once, in the order written.
 * With Postgres the two are two processes (here two pools, each with its own router): the second
 * waits on the announcers' advisory lock until the first has routed and deleted its batch. The
 * embedded database has one process, and its announcers take turns in it.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { announcePending } from '../../src/pipeline/alerts/alert-announcer.ts';
import { acknowledgeAlert, fireAlert, resolveAlert } from '../../src/pipeline/alerts/alert-store.ts';
import type { RawEventInput } from '../../src/pipeline/events/envelope.ts';
import type { EventRouter } from '../../src/pipeline/router/event-router.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };

/** A router that records what it routes as `<type> (<name>)`, each route first waiting for `gate` (when given). */
function recordingRouter(name: string, seen: string[], gate?: { entered: () => void; open: Promise<void> }): Pick<EventRouter, 'route'> {
  return {
    async route(event: RawEventInput) {
      if (gate) {
        gate.entered();
        await gate.open;
      }
      seen.push(`${event.type} (${name})`);
      return {} as Awaited<ReturnType<EventRouter['route']>>;
    },
  };
}

/** An alert fired and announced, then acknowledged: the acknowledgement is the one change pending. */
async function acknowledgedAlert(db: Database): Promise<string> {
  const alert = (await fireAlert(db, { rule: 'outbox.backlog_age', subject: 'outbox:app/env', scope: SCOPE, severity: 'warning', value: 600, message: 'm' }))!;
  await announcePending(db, recordingRouter('setup', []));
  await acknowledgeAlert(db, alert.id, 'ops');
  return alert.id;
}

function gate() {
  let entered!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (entered = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { gate: { entered, open: opened }, reached, open };
}

describe('announcing alert changes from two announcers at once', () => {
  it('routes each change once and in order when the server and a worker process announce together (Postgres)', async () => {
    const database = await createTestDatabase();
    const server = createPostgresDatabase({ url: database.url, logger });
    onTestFinished(() => server.close());
    const worker = createPostgresDatabase({ url: database.url, logger });
    onTestFinished(() => worker.close());
    await migrate(server, { logger });
    const id = await acknowledgedAlert(server);

    const seen: string[] = [];
    const slow = gate();
    // The server routes the acknowledgement slowly (its Redis busy)…
    const announcedByServer = announcePending(server, recordingRouter('server', seen, slow.gate));
    await slow.reached;
    // …meanwhile the evaluation resolves the alert and announces what is pending.
    await resolveAlert(worker, id, 0);
    let workerSettled = false;
    const announcedByWorker = announcePending(worker, recordingRouter('worker', seen)).finally(() => (workerSettled = true));
    // Either it waits for the server's announcing, or (the race) it routes both changes now.
    await waitFor(
      async () => {
        if (workerSettled) return true;
        const { rows } = await server.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
        );
        return rows[0]!.n > 0;
      },
      { message: 'the worker waits for the lock or has announced' },
    );
    slow.open();
    expect([await announcedByServer, await announcedByWorker]).toEqual([1, 1]);
    expect(seen).toEqual(['alert.acknowledged (server)', 'alert.resolved (worker)']);
    expect((await server.query('SELECT 1 FROM alert_changes')).rowCount).toBe(0);
  });

  it('routes each change once and in order when two announcers of one process announce together (embedded)', { timeout: 90_000 }, async () => {
    const db = await createEmbeddedDatabase({ dataDir: 'memory://' });
    onTestFinished(() => db.close());
    await migrate(db, { logger });
    const id = await acknowledgedAlert(db);

    const seen: string[] = [];
    const slow = gate();
    const first = announcePending(db, recordingRouter('server', seen, slow.gate));
    await slow.reached;
    await resolveAlert(db, id, 0);
    // A router that writes to the database as it routes (the webhook tap does): never held up by the announcing.
    const writing: Pick<EventRouter, 'route'> = {
      async route(event) {
        await db.query('SELECT 1');
        return recordingRouter('worker', seen).route(event);
      },
    };
    const second = announcePending(db, writing);
    slow.open();
    expect([await first, await second]).toEqual([1, 1]);
    expect(seen).toEqual(['alert.acknowledged (server)', 'alert.resolved (worker)']);
    expect((await db.query('SELECT 1 FROM alert_changes')).rowCount).toBe(0);
  });
});
