/**
 * `documents(service)` pages by id in byte order (`id COLLATE "C"`). The primary key orders ids by
 * the database's default collation, so before migration 0029 no index served that order and every
 * page sorted all of the service's rows (58–159 ms a page of 50 with 100,000 documents). These
 * tests read the plan of the listing's own statement on Postgres and on the embedded database: an
 * index scan of `sync_documents_live_by_id` that stops after the page, with no sort. The plan's
 * shape is asserted, never its time.
 */
import { describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createEmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrations.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { createLogger } from '../../src/logger.ts';
import { LIST_LIVE_DOCUMENTS_SQL, listLiveDocuments } from '../../src/pipeline/sync/document-store.ts';
import { createTestDatabase } from '../helpers/index.ts';

const logger = createLogger({ level: 'silent' });

const databases = {
  postgres: async () => {
    const database = await createTestDatabase();
    const db = createPostgresDatabase({ url: database.url, logger });
    return { db, dispose: async () => (await db.close(), await database.dispose()) };
  },
  embedded: async () => {
    const db = await createEmbeddedDatabase({ dataDir: 'memory://' });
    return { db, dispose: () => db.close() };
  },
};

/** One node of `EXPLAIN (FORMAT JSON)`'s plan tree. */
interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Index Name'?: string;
  readonly Plans?: readonly PlanNode[];
}

function nodesOf(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodesOf)];
}

/**
 * A service big enough that reading it whole is clearly dearer than reading a page (20,000 live
 * documents, a quarter as many tombstones), beside a neighbour service. Ids mix cases, digits and
 * punctuation so that byte order and a linguistic collation's order differ.
 */
async function fill(db: Database): Promise<void> {
  await db.query(
    `INSERT INTO sync_documents (app, env, tenant, service, id, revision, data, deleted)
     SELECT 'app', 'env', '', service, id, 1, jsonb_build_object('i', i), i % 5 = 0
       FROM generate_series(1, 25000) AS i,
            LATERAL (VALUES (CASE WHEN i % 2 = 0 THEN 'Doc-' ELSE 'doc_' END || lpad(i::text, 6, '0'))) AS ids(id),
            LATERAL (VALUES ('boards'), ('cards')) AS services(service)`,
  );
  await db.query('ANALYZE sync_documents');
}

describe.each(Object.entries(databases))('the documents listing on %s', (_name, open) => {
  it('reads a page through the live-documents index in byte order, with no sort of the service', { timeout: 120_000 }, async () => {
    const { db, dispose } = await open();
    try {
      await migrate(db, { logger });
      await fill(db);
      const scope = { app: 'app', env: 'env', tenant: undefined };

      for (const after of ['', 'Doc-012000']) {
        const { rows } = await db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${LIST_LIVE_DOCUMENTS_SQL}`, ['app', 'env', '', 'boards', after, 51]);
        // node-postgres parses the json column; PGlite may hand back its text.
        const raw = rows[0]!['QUERY PLAN'];
        const [{ Plan: plan }] = (typeof raw === 'string' ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
        const nodes = nodesOf(plan);
        expect(nodes.map((node) => node['Node Type'])).not.toContain('Sort');
        expect(nodes.map((node) => node['Node Type'])).not.toContain('Incremental Sort');
        expect(nodes.find((node) => node['Index Name'] !== undefined)).toMatchObject({ 'Node Type': 'Index Scan', 'Index Name': 'sync_documents_live_by_id' });
      }

      // And the page is what the listing promises: live documents only, in byte order.
      const page = await listLiveDocuments(db, scope, 'boards', 'Doc-024990', 50);
      const ids = page.map((row) => row.id);
      expect(ids).toEqual([...ids].sort());
      expect(ids.slice(0, 3)).toEqual(['Doc-024992', 'Doc-024994', 'Doc-024996']);
      expect(page.every((row) => !row.deleted)).toBe(true);
      expect(ids).not.toContain('Doc-025000');
    } finally {
      await dispose();
    }
  });
});
