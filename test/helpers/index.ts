export { freePort } from './free-port.ts';
export { startPostgres } from './postgres.ts';
export type { PostgresInstance, StartPostgresOptions } from './postgres.ts';
export { pingRedis, startRedis } from './redis.ts';
export type { RedisInstance, StartRedisOptions } from './redis.ts';
export {
  createTestDatabase,
  sharedPostgresUrl,
  startPrivatePostgres,
  startPrivateRedis,
  testRedisUrl,
  uniqueName,
  uniquePrefix,
} from './services.ts';
export type { TeardownOptions, TestDatabase } from './services.ts';
export { deferred, waitFor } from './wait-for.ts';
export type { Deferred, WaitForOptions } from './wait-for.ts';
