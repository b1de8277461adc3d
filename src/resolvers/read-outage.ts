/**
 * The log of the admin reads refused UNAVAILABLE — the cluster dashboard (its reports are in
 * Redis) and the analytics (Postgres, and the minutes not flushed yet in Redis) — over GraphQL and
 * REST alike. The refusal itself is the client's answer (503, "retry"), which the error masker
 * does not log; a screen polling every few seconds must not write a line per request either (an
 * error each, before: "Stream isn't writeable…"). An outage is logged at `warn` when its first
 * read is refused, again at most once a minute while it lasts (with how many were refused, and
 * the last cause: one that does not heal — a Redis refusing its commands — stays in sight), and at
 * `info` when a read answers again; each refusal between at `debug`.
 */
import { ErrorCode, isTributaryError } from '../errors.ts';
import { componentLogger, type Logger } from '../logger.ts';
import type { ResolverContext, Services } from './context.ts';

/** The reads told apart: each has its outage, as their stores fail apart (`topicStats` reads Postgres only). */
export type AdminRead = 'dashboard' | 'hotTopics' | 'topicStats';

/** While refusals go on, the outage is told again at `warn` this often at most, in ms. */
export const REFUSAL_REMINDER_MS = 60_000;

interface Outage {
  readonly since: number;
  refused: number;
  toldAt: number;
}

/**
 * Per process: one `Services` is built per server (`start/server.ts`), and what these reads keep
 * lives as long as it. Kept beside it rather than in it, as the resolvers are functions of a context.
 */
const outages = new WeakMap<Services, Map<AdminRead, Outage>>();

/** Runs an admin read; an UNAVAILABLE refusal is logged once an outage (see above) and thrown as it is. */
export async function loggedRead<T>(context: ResolverContext, read: AdminRead, work: () => Promise<T>, now: () => number = Date.now): Promise<T> {
  const { services } = context;
  let result: T;
  try {
    result = await work();
  } catch (error) {
    if (isTributaryError(error) && error.code === ErrorCode.UNAVAILABLE) refused(services, read, error, now());
    throw error;
  }
  answered(services, read, now());
  return result;
}

function refused(services: Services, read: AdminRead, error: unknown, time: number): void {
  let byRead = outages.get(services);
  if (!byRead) outages.set(services, (byRead = new Map<AdminRead, Outage>()));
  const logger = loggerOf(services);
  const outage = byRead.get(read);
  if (!outage) {
    byRead.set(read, { since: time, refused: 1, toldAt: time });
    logger.warn({ err: error, read }, `${read} reads answer UNAVAILABLE: a backing service cannot be reached (further refusals are counted until a read answers again)`);
    return;
  }
  outage.refused += 1;
  if (time - outage.toldAt < REFUSAL_REMINDER_MS) {
    logger.debug({ err: error, read }, `${read} read answered UNAVAILABLE`);
    return;
  }
  outage.toldAt = time;
  logger.warn({ err: error, read, refused: outage.refused, seconds: Math.round((time - outage.since) / 1000) }, `${read} reads still answer UNAVAILABLE`);
}

function answered(services: Services, read: AdminRead, time: number): void {
  const outage = outages.get(services)?.get(read);
  if (!outage) return;
  outages.get(services)?.delete(read);
  loggerOf(services).info({ read, refused: outage.refused, seconds: Math.round((time - outage.since) / 1000) }, `${read} reads answer again`);
}

function loggerOf(services: Services): Logger {
  return componentLogger(services.logger, 'admin-reads');
}
