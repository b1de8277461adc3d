/**
 * `setOutboxSource` on a database that cannot be reached now (nothing listening, down, restarting)
 * answers UNAVAILABLE — retry later — not BAD_USER_INPUT, which says the request is wrong; a
 * database that answers and refuses (no such database) stays BAD_USER_INPUT. Both name
 * `databaseUrl`, and nothing is saved.
 */
import { createServer } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';
import { testOutboxAdmin } from '../helpers/outbox-source.ts';
import { createTestDatabase } from '../helpers/services.ts';

const SCOPE = { app: 'shop', env: 'prod', tenant: undefined };

/** A local port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('setOutboxSource on a database it cannot use', () => {
  it('answers UNAVAILABLE when nothing listens there, BAD_USER_INPUT when the database refuses', async () => {
    const fixture = await createDeliveryFixture();
    onTestFinished(() => fixture.dispose());
    const outbox = testOutboxAdmin(fixture.db, { checkReplication: async () => {} });
    const refusal = (databaseUrl: string) => outbox.setSource(SCOPE, { databaseUrl, mode: 'POLL', createTable: true }).then(() => undefined, (error: unknown) => error);

    const down = await refusal(`postgres://u:p@127.0.0.1:${await closedPort()}/shop`);
    expect(down).toBeInstanceOf(TributaryError);
    expect(down).toMatchObject({ code: ErrorCode.UNAVAILABLE, details: { field: 'databaseUrl' } });

    const appDb = await createTestDatabase();
    const missing = new URL(appDb.url);
    missing.pathname = '/no_such_database';
    expect(await refusal(missing.toString())).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'databaseUrl' } });

    expect(await outbox.getSource(SCOPE)).toBeUndefined();
  });
});
