/**
 * An environment's outbox saved in a platform database before a server starts on it, by the same
 * code the admin's `setOutboxSource` runs (the table checked or created, the mode settled): the
 * server's outbox pollers load it as they start. Set through the API on a running server, a POLL
 * source waits for the pollers' next refresh — up to 5 s (`workers/outbox-pollers.ts`). For the
 * suites that use an outbox to feed events, not the ones about setting it (outbox-api.test.ts).
 */
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { assertLogicalReplicationAllowed } from '../../src/pipeline/cdc/wal/replication-setup.ts';
import type { Database } from '../../src/db/database.ts';
import { createOutboxAdmin, type OutboxAdmin, type OutboxAdminOptions, type SetOutboxSourceInput } from '../../src/pipeline/outbox/outbox-admin.ts';
import { createOutboxPool } from '../../src/pipeline/outbox/outbox-pool.ts';
import type { OutboxSourceView } from '../../src/pipeline/outbox/outbox-store.ts';
import { defaultPublicationName } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { DEFAULT_CLAIMS } from './tokens.ts';

/**
 * The outbox admin as the server wires it (start/server.ts) on the platform database `db`, silent
 * unless `overrides` give a logger; `overrides` replace its parts (a replication check skipped, a
 * pool factory that reroutes URLs).
 */
export function testOutboxAdmin(db: Database, overrides: Partial<Omit<OutboxAdminOptions, 'db'>> = {}): OutboxAdmin {
  const logger = overrides.logger ?? createLogger({ level: 'silent' });
  return createOutboxAdmin({ db, connect: (url) => createOutboxPool(url, logger), checkReplication: assertLogicalReplicationAllowed, publicationOf: defaultPublicationName, logger, ...overrides });
}

/**
 * Saves the outbox of the test tokens' environment (`DEFAULT_CLAIMS`: app `shop`, env `prod`) in
 * the platform database at `platformUrl` (migrated, no server on it yet).
 */
export async function saveOutboxSourceBeforeStart(platformUrl: string, input: SetOutboxSourceInput): Promise<OutboxSourceView> {
  const logger = createLogger({ level: 'silent' });
  const db = createPostgresDatabase({ url: platformUrl, logger });
  try {
    const admin = testOutboxAdmin(db, { logger });
    return await admin.setSource({ app: DEFAULT_CLAIMS.app!, env: DEFAULT_CLAIMS.env!, tenant: undefined }, input);
  } finally {
    await db.close();
  }
}
