/**
 * Vitest globalSetup: one Postgres cluster and one Redis server for the whole test run, shared
 * by every worker through `provide`/`inject`. `DATABASE_URL` / `REDIS_URL`, when set, are used
 * instead (e.g. the docker-compose services); the harness then starts nothing for that service.
 * The returned teardown stops what was started and deletes its directories, pass or fail.
 */
import type { TestProject } from 'vitest/node';
import { createMigratedTemplate } from './migrated-template.ts';
import { createMigratedPgliteTemplate, createPgliteTemplate } from './pglite-template.ts';
import { startPostgres } from './postgres.ts';
import { startRedis } from './redis.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /**
     * Admin URL of the shared cluster (a superuser, or a role with CREATEDB and REPLICATION).
     * Tests never write here: they call `createTestDatabase()`.
     */
    databaseUrl: string;
    /** URL of the shared Redis. Tests namespace their keys with `uniquePrefix()`. */
    redisUrl: string;
    /** A database of the shared cluster with every migration applied, to copy (`createTestDatabase({ migrated: true })`). */
    migratedTemplate: string;
    /** A PGlite data folder already initialised, to copy for an embedded server (`pgliteDataDir()`). */
    pgliteTemplate: string;
    /** The same with every migration applied (`pgliteDataDir({ migrated: true })`). */
    pgliteMigratedTemplate: string;
  }
}

type Dispose = () => Promise<void>;

export default async function setup(project: TestProject): Promise<Dispose> {
  const disposers: Dispose[] = [];
  const teardown = async () => {
    const errors: unknown[] = [];
    for (const dispose of disposers.reverse()) {
      try {
        await dispose();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'test harness teardown failed');
  };

  const fromEnv = (name: string) => {
    const value = process.env[name]?.trim();
    return value ? value : undefined;
  };

  const [postgres, redis, pglite] = await Promise.allSettled([
    (async () => {
      let url = fromEnv('DATABASE_URL');
      if (url) {
        console.log('[test harness] Postgres: DATABASE_URL from the environment');
      } else {
        const instance = await startPostgres();
        disposers.push(() => instance.dispose());
        console.log(`[test harness] Postgres: private cluster on port ${instance.port} (${instance.dataDir})`);
        url = instance.url;
      }
      // Migrated while PGlite's template is still initialising (its initdb is the longest step);
      // dropped before the cluster stops (disposers run in reverse).
      const template = await createMigratedTemplate(url);
      disposers.push(() => template.dispose());
      return { url, template: template.name };
    })(),
    (async () => {
      const url = fromEnv('REDIS_URL');
      if (url) {
        console.log('[test harness] Redis: REDIS_URL from the environment');
        return url;
      }
      const instance = await startRedis();
      disposers.push(() => instance.dispose());
      console.log(`[test harness] Redis: private server on port ${instance.port}`);
      return instance.url;
    })(),
    (async () => {
      const template = await createPgliteTemplate();
      disposers.push(() => template.dispose());
      const migrated = await createMigratedPgliteTemplate(template.dir);
      disposers.push(() => migrated.dispose());
      return { dir: template.dir, migratedDir: migrated.dir };
    })(),
  ]);

  if (postgres.status === 'rejected' || redis.status === 'rejected' || pglite.status === 'rejected') {
    await teardown().catch(() => {});
    const reasons = [postgres, redis, pglite].flatMap((result): unknown[] => (result.status === 'rejected' ? [result.reason] : []));
    throw reasons.length === 1 ? reasons[0] : new AggregateError(reasons, 'test harness setup failed');
  }

  project.provide('databaseUrl', postgres.value.url);
  project.provide('migratedTemplate', postgres.value.template);
  project.provide('pgliteTemplate', pglite.value.dir);
  project.provide('pgliteMigratedTemplate', pglite.value.migratedDir);
  project.provide('redisUrl', redis.value);
  return teardown;
}
