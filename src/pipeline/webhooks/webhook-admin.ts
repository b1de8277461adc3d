/**
 * Webhooks as an environment's admin manages them: endpoints (scoped to the caller's app/env and,
 * for a caller with a tenant, that tenant), their delivery log, redelivery, replay and a test
 * event. Every operation checks the endpoint belongs to the caller's scope; an endpoint of another
 * scope is NOT_FOUND, like one that does not exist.
 */
import type { Database } from '../../db/database.ts';
import { badUserInput, ErrorCode, InternalError, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { newEventId } from '../events/event-id.ts';
import { WEBHOOK_TEST_TOPIC, WEBHOOK_TEST_TYPE } from '../events/system-topics.ts';
import type { EventLog } from '../log/event-log.ts';
import { MAX_TENANT_LENGTH } from '../names.ts';
import type { Scope } from '../scope.ts';
import type { DeliveryScheduler } from './delivery-scheduler.ts';
import { listAttempts, listDeliveries, type AttemptFilter, type AttemptRecord, type DeliveryFilter } from './delivery-log.ts';
import { copyOf, storeAdminDeliveries, type AdminDeliveries } from './admin-deliveries.ts';
import { getDelivery, type Delivery, type NewDelivery } from './delivery-store.ts';
import { planReplay } from './replay-deliveries.ts';
import type { DeliveryStatistics } from './delivery-statistics.ts';
import type { EndpointCache } from './endpoint-cache.ts';
import { createEndpointResume } from './endpoint-resume.ts';
import { assertEventSelection } from './endpoint-selection.ts';
import {
  deleteEndpoint,
  ADMIN_DISABLE_REASON,
  disableEndpoint,
  enableEndpoint,
  lockAndCountEndpoints,
  getEndpoint,
  insertEndpoint,
  listEndpoints,
  rotateEndpointSecret,
  updateEndpoint,
  type SigningEndpoint,
  type WebhookEndpoint,
} from './endpoint-store.ts';
import { assertResolvableTarget, assertWebhookUrl } from './target-guard.ts';
import { createWebhookDns, type WebhookDnsOptions } from './webhook-dns.ts';
import { CONTROL, DEFAULT_CONCURRENCY, ENDPOINT_ID, MAX_ADMIN_PENDING, MAX_CONCURRENCY, MAX_DESCRIPTION, MAX_ENDPOINTS, MAX_OVERLAP_SECONDS, MAX_RATE, MAX_REPLAY, MAX_TENANT_ENDPOINTS } from './admin-limits.ts';
import { newWebhookSecret } from './webhook-signature.ts';

export interface EndpointInput {
  readonly url: string;
  readonly description?: string | undefined;
  readonly events: readonly string[];
  readonly tenant?: string | undefined;
  readonly rateLimitPerSecond?: number | null | undefined;
  readonly maxConcurrency?: number | undefined;
}

export type EndpointUpdate = Partial<Omit<EndpointInput, 'tenant'>>;

/** An endpoint with its secret: only the answers of create and rotate carry one. */
export interface EndpointWithSecret {
  readonly endpoint: WebhookEndpoint;
  readonly secret: string;
}

export interface WebhookAdmin {
  createEndpoint(scope: Scope, input: EndpointInput): Promise<EndpointWithSecret>;
  updateEndpoint(scope: Scope, id: string, input: EndpointUpdate): Promise<WebhookEndpoint>;
  deleteEndpoint(scope: Scope, id: string): Promise<boolean>;
  setEnabled(scope: Scope, id: string, enabled: boolean): Promise<WebhookEndpoint>;
  /**
   * The endpoint's deliveries waiting out a retry's backoff or a receiver's Retry-After go now (a
   * receiver back after an outage need not wait for each one's next attempt, up to an hour in the
   * retry tail): each lane's head is made due, as an enable does. Their attempts and retry window
   * go on from where they were. Returns how many were made due at once (of the first 1,000 lanes;
   * more lanes are gone through in the background).
   * @throws TributaryError BAD_USER_INPUT (`endpointId`) when the endpoint is disabled: enabling it does this.
   */
  retryNow(scope: Scope, id: string): Promise<number>;
  rotateSecret(scope: Scope, id: string, overlapSeconds: number): Promise<EndpointWithSecret>;
  endpoints(scope: Scope): Promise<WebhookEndpoint[]>;
  deliveries(scope: Scope, filter: Omit<DeliveryFilter, 'endpointIds'> & { readonly endpointId?: string | undefined }): Promise<Delivery[]>;
  attempts(scope: Scope, filter: Omit<AttemptFilter, 'endpointIds'> & { readonly endpointId?: string | undefined }): Promise<AttemptRecord[]>;
  /** A new delivery of a delivery's event (the same `webhook-id`: the event id), after the lane's pending ones. */
  redeliver(scope: Scope, deliveryId: string): Promise<Delivery>;
  /**
   * New deliveries of the events of a time range the endpoint selects, oldest first: from the event
   * log (so events never attempted — the endpoint is newer, or was disabled — are reached too, within
   * the log's retention) and, for older events, from the endpoint's own deliveries. With
   * `onlyFailed`, the dead-lettered deliveries only, of events whose latest delivery is dead (not
   * one redelivered since, or pending again). Returns how many. Read and stored a page at a time, all
   * in one transaction: stored whole, or not at all.
   * @throws TributaryError BAD_USER_INPUT (`until`) when the range holds more than one replay sends
   *   (10,000): nothing is replayed, the admin replays it in parts.
   * @throws TributaryError RATE_LIMITED (here and in `redeliver`, `sendTest`) when the endpoint would
   *   have more than 20,000 pending deliveries made by an admin: nothing is stored.
   */
  replay(scope: Scope, endpointId: string, range: { since: Date; until?: Date | undefined; onlyFailed: boolean }): Promise<number>;
  /** A `webhook.test` event to the endpoint (sent even when it is disabled). */
  sendTest(scope: Scope, endpointId: string): Promise<Delivery>;
  /**
   * Stops the work an enable left in the background (endpoint-resume.ts), after its statement under
   * way, and the DNS queries of URL checks under way.
   */
  close(): Promise<void>;
}

export interface WebhookAdminOptions {
  readonly db: Database;
  /** Where replays find events never delivered. */
  readonly log: EventLog;
  readonly endpoints: EndpointCache;
  readonly scheduler: DeliveryScheduler;
  /** Told how many deliveries a redelivery, replay or test stored. */
  readonly statistics: DeliveryStatistics;
  readonly allowPrivateTargets: boolean;
  /**
   * Where a URL's host is resolved at creation: as the attempts resolve it (webhook-dns.ts), so a
   * URL is judged on the answers its deliveries will get. @default c-ares with the system's nameservers
   */
  readonly dns?: WebhookDnsOptions;
  /** Largest body sent; a larger event goes without its data. */
  readonly maxBodyBytes: number;
  /** Where the work an enable leaves in the background tells of its failures. */
  readonly logger: Logger;
}

export function createWebhookAdmin(options: WebhookAdminOptions): WebhookAdmin {
  const { db } = options;

  /** The endpoint, when it is in the caller's scope; `field` names the argument that gave its id. */
  const owned = async (scope: Scope, id: string, field = 'id'): Promise<SigningEndpoint> => {
    const endpoint = ENDPOINT_ID.test(id) ? await getEndpoint(db, id) : undefined;
    if (!endpoint || endpoint.app !== scope.app || endpoint.env !== scope.env || (scope.tenant !== undefined && endpoint.tenant !== scope.tenant)) {
      throw notFound(field, ENDPOINT_ID.test(id) ? `No webhook endpoint ${id} in this environment` : 'No webhook endpoint with that id in this environment');
    }
    return endpoint;
  };
  /** The row an update returned; none: the endpoint was deleted meanwhile. */
  const stillThere = <T>(row: T | undefined): T => {
    if (row === undefined) throw notFound('id', 'The webhook endpoint was deleted meanwhile');
    return row;
  };

  /**
   * `value`, once this instance reloaded its endpoints after a change to `endpointId` committed — or
   * failed to, which is logged and never thrown: the change is made, and the answer may carry what
   * is shown once (a new secret). The reload reaches this instance within its refresh period then.
   */
  const changed = async <T>(endpointId: string, value: T): Promise<T> => {
    await options.endpoints.changed(endpointId);
    return value;
  };
  const resume = createEndpointResume({ db, scheduler: options.scheduler, logger: options.logger });

  const checkLimits = (input: Pick<EndpointInput, 'rateLimitPerSecond' | 'maxConcurrency'>) => {
    const { rateLimitPerSecond: rate, maxConcurrency: concurrency } = input;
    if (rate !== undefined && rate !== null && (!Number.isInteger(rate) || rate < 1 || rate > MAX_RATE)) {
      throw badUserInput('rateLimitPerSecond', `rateLimitPerSecond must be an integer from 1 to ${MAX_RATE}, or null for none`);
    }
    if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY)) {
      throw badUserInput('maxConcurrency', `maxConcurrency must be an integer from 1 to ${MAX_CONCURRENCY}`);
    }
  };

  /**
   * Inserts the endpoint's deliveries an admin asked for and schedules them; returns the ids inserted.
   * @throws TributaryError RATE_LIMITED when they would leave more than MAX_ADMIN_PENDING of them pending,
   * NOT_FOUND when the endpoint was deleted meanwhile: nothing is stored.
   */
  const schedule = async (endpointId: string, deliveries: AdminDeliveries | readonly NewDelivery[]): Promise<string[]> => {
    const { inserted, heads } = await storeAdminDeliveries(db, endpointId, deliveries, MAX_ADMIN_PENDING);
    options.statistics.inserted(inserted.length);
    // Stored and committed: a scheduler that cannot take them now (BullMQ's Redis away) loses
    // nothing — the workers' reconciler finds due lane heads without a job, as it finds the routing
    // tap's (webhook-tap.ts). Answering with an error would have the admin ask again, and every
    // delivery stored a second time: up to a replay's 10,000 sent twice.
    await options.scheduler.schedule(heads).catch((error: unknown) => {
      options.logger.warn({ err: error, endpoint: endpointId, heads: heads.length }, 'webhook deliveries an admin asked for stored but not queued; the reconciler queues them');
    });
    return inserted;
  };

  const inserted = async (ids: readonly string[]): Promise<Delivery> => {
    const delivery = ids[0] === undefined ? undefined : await getDelivery(db, ids[0]);
    if (!delivery) throw new InternalError('WEBHOOK_DELIVERY', 'a delivery just inserted could not be read');
    return delivery;
  };

  const guard = { allowPrivateTargets: options.allowPrivateTargets };
  /**
   * A target URL as stored, once its shape was checked (`assertWebhookUrl`, with the rest of the
   * input) and where its host resolves to now (every attempt checks again) — last, so that a DNS
   * outage does not hide what else is wrong with the input.
   */
  const dns = createWebhookDns(options.dns);
  const resolvedUrl = async (parsed: URL): Promise<string> => {
    await assertResolvableTarget(parsed, guard, (host) => dns.resolve(host));
    return parsed.toString();
  };

  return {
    async createEndpoint(scope, input) {
      const parsedUrl = assertWebhookUrl(input.url, guard);
      assertEventSelection(input.events);
      checkLimits(input);
      checkDescription(input.description);
      if (input.tenant !== undefined && (input.tenant.length === 0 || input.tenant.length > MAX_TENANT_LENGTH || input.tenant.trim() !== input.tenant || CONTROL.test(input.tenant))) {
        throw badUserInput('tenant', `tenant must be a tenant id: 1 to ${MAX_TENANT_LENGTH} characters, no surrounding spaces or control characters`);
      }
      if (scope.tenant !== undefined && input.tenant !== undefined && input.tenant !== scope.tenant) {
        // Creating for another tenant is FORBIDDEN, not a mistake in the input. (Reading another
        // tenant's endpoint answers NOT_FOUND instead, see `owned`: so as not to reveal it exists.)
        throw new TributaryError(ErrorCode.FORBIDDEN, 'A caller with a tenant creates endpoints of that tenant only');
      }
      const tenant = scope.tenant ?? input.tenant ?? null;
      checkTenantSelection(input.events, tenant);
      const url = await resolvedUrl(parsedUrl);
      const secret = newWebhookSecret();
      const endpoint = await db.transaction(async (tx) => {
        const count = await lockAndCountEndpoints(tx, scope.app, scope.env, tenant);
        if (tenant !== null && count.tenant >= MAX_TENANT_ENDPOINTS) {
          throw new TributaryError(ErrorCode.CONFLICT, `This tenant has ${MAX_TENANT_ENDPOINTS} webhook endpoints, the most one tenant may have: delete one first`);
        }
        if (count.environment >= MAX_ENDPOINTS) {
          // A tenant's caller is not told how many the other tenants have.
          const full = scope.tenant === undefined ? `This environment has ${MAX_ENDPOINTS} webhook endpoints, the most it may have: delete one first` : 'This environment has as many webhook endpoints as it may have: no more can be created now';
          throw new TributaryError(ErrorCode.CONFLICT, full);
        }
        return insertEndpoint(tx, {
          app: scope.app,
          env: scope.env,
          tenant,
          url,
          description: input.description ?? '',
          events: input.events,
          rateLimitPerSecond: input.rateLimitPerSecond ?? null,
          maxConcurrency: input.maxConcurrency ?? DEFAULT_CONCURRENCY,
          secret,
        });
      });
      return changed(endpoint.id, { endpoint, secret });
    },

    async updateEndpoint(scope, id, input) {
      const { tenant } = await owned(scope, id);
      const parsedUrl = input.url === undefined ? undefined : assertWebhookUrl(input.url, guard);
      if (input.events !== undefined) {
        assertEventSelection(input.events);
        checkTenantSelection(input.events, tenant);
      }
      checkLimits(input);
      checkDescription(input.description);
      const url = parsedUrl === undefined ? undefined : await resolvedUrl(parsedUrl);
      const updated = await updateEndpoint(db, id, {
        ...(url !== undefined && { url }),
        ...(input.description !== undefined && { description: input.description }),
        ...(input.events !== undefined && { events: input.events }),
        ...(input.rateLimitPerSecond !== undefined && { rateLimitPerSecond: input.rateLimitPerSecond }),
        ...(input.maxConcurrency !== undefined && { maxConcurrency: input.maxConcurrency }),
      });
      return changed(id, stillThere(updated));
    },

    async deleteEndpoint(scope, id) {
      await owned(scope, id);
      return changed(id, await deleteEndpoint(db, id));
    },

    async setEnabled(scope, id, enabled) {
      await owned(scope, id);
      // Only a call that turns the endpoint on or off changes it. One that finds it so already (a
      // script applying its configuration again) leaves it as it is: an enabled endpoint keeps its
      // failure streak, which disables it in time, and its deliveries keep waiting out a receiver's
      // Retry-After or the retry tail; a disabled one keeps why and since when it is disabled.
      const turned = enabled ? await enableEndpoint(db, id) : await disableEndpoint(db, id, ADMIN_DISABLE_REASON);
      if (!turned) return stillThere(await getEndpoint(db, id));
      await options.endpoints.changed(id);
      // What waited for the endpoint goes now, not at its next recheck: a page of it before the
      // answer, the rest in the background (endpoint-resume.ts) — whether the reload above did or not.
      if (enabled) await resume.resume(id);
      return turned;
    },

    async retryNow(scope, id) {
      const endpoint = await owned(scope, id, 'endpointId');
      if (!endpoint.enabled) throw badUserInput('endpointId', 'The webhook endpoint is disabled: enabling it (setWebhookEndpointEnabled) sends what waits for it at once');
      return resume.resume(id);
    },

    async rotateSecret(scope, id, overlapSeconds) {
      await owned(scope, id);
      if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > MAX_OVERLAP_SECONDS) {
        throw badUserInput('overlapSeconds', `overlapSeconds must be an integer from 0 to ${MAX_OVERLAP_SECONDS}`);
      }
      const secret = newWebhookSecret();
      const endpoint = await rotateEndpointSecret(db, id, secret, overlapSeconds);
      return changed(id, { endpoint: stillThere(endpoint), secret });
    },

    endpoints: async (scope) => (await listEndpoints(db, scope.app, scope.env)).filter((endpoint) => scope.tenant === undefined || endpoint.tenant === scope.tenant),

    async deliveries(scope, filter) {
      const endpointIds = filter.endpointId !== undefined ? [(await owned(scope, filter.endpointId, 'endpointId')).id] : (await this.endpoints(scope)).map((endpoint) => endpoint.id);
      return listDeliveries(db, { ...filter, endpointIds });
    },

    async attempts(scope, filter) {
      const endpointIds = filter.endpointId !== undefined ? [(await owned(scope, filter.endpointId, 'endpointId')).id] : (await this.endpoints(scope)).map((endpoint) => endpoint.id);
      return listAttempts(db, { ...filter, endpointIds });
    },

    async redeliver(scope, deliveryId) {
      const delivery = /^\d{1,18}$/.test(deliveryId) ? await getDelivery(db, deliveryId) : undefined;
      // Another scope's delivery is answered as one that does not exist: nothing of it (its endpoint's id) is told.
      const missing = () => notFound('deliveryId', /^\d{1,18}$/.test(deliveryId) ? `No webhook delivery ${deliveryId}` : 'No webhook delivery with that id');
      if (!delivery) throw missing();
      await owned(scope, delivery.endpointId).catch((error: unknown) => {
        throw error instanceof TributaryError && error.code === ErrorCode.NOT_FOUND ? missing() : error;
      });
      return inserted(await schedule(delivery.endpointId, [copyOf(delivery, 'manual')]));
    },

    async replay(scope, endpointId, range) {
      const endpoint = await owned(scope, endpointId, 'endpointId');
      const replay = await planReplay({
        db,
        log: options.log,
        endpoint,
        range: { since: range.since, until: range.until ?? new Date(), onlyFailed: range.onlyFailed },
        limit: MAX_REPLAY,
        maxBodyBytes: options.maxBodyBytes,
      });
      if (!replay) throw tooManyToReplay();
      // Fewer than planned when some left both the log and the delivery log meanwhile (replay-deliveries.ts).
      return replay.count === 0 ? 0 : (await schedule(endpointId, replay)).length;
    },

    async sendTest(scope, endpointId) {
      const endpoint = await owned(scope, endpointId, 'endpointId');
      const id = newEventId();
      const now = new Date();
      const body = JSON.stringify({
        id,
        type: WEBHOOK_TEST_TYPE,
        topic: WEBHOOK_TEST_TOPIC,
        source: 'system',
        timestamp: now.toISOString(),
        tenant: endpoint.tenant,
        entity: null,
        data: { endpointId, message: 'A test event from Tributary' },
      });
      return inserted(await schedule(endpointId, [{ endpointId, eventId: id, eventType: WEBHOOK_TEST_TYPE, topic: WEBHOOK_TEST_TOPIC, lane: `event:${id}`, body, trigger: 'test', eventTime: now }]));
    },

    close: () => {
      dns.close();
      return resume.close();
    },
  };
}

function notFound(field: string, message: string): TributaryError {
  return new TributaryError(ErrorCode.NOT_FOUND, message, { details: { field } });
}

/**
 * Tributary's topics `system.alerts` and `system.dashboard` are environment-wide — their events carry
 * no tenant — so an endpoint of a tenant selecting them would never receive one: refused, not
 * accepted to stay silent. `*` stays allowed (it selects the tenant's own events too).
 */
function checkTenantSelection(events: readonly string[], tenant: string | null): void {
  const wrong = tenant === null ? undefined : events.find((entry) => entry.startsWith('system.'));
  if (wrong === undefined) return;
  throw badUserInput('events', `events entry "${wrong}" selects system.alerts or system.dashboard, which are environment-wide (their events carry no tenant): an endpoint of a tenant never receives them. Alerts go to endpoints without a tenant, created by the environment's admin`);
}

function checkDescription(description: string | undefined): void {
  if (description !== undefined && (description.length > MAX_DESCRIPTION || CONTROL.test(description))) {
    throw badUserInput('description', `description must be at most ${MAX_DESCRIPTION} characters, without control characters`);
  }
}

/** Refused whole rather than cut short: a replay that silently left events out would look complete. */
function tooManyToReplay(): TributaryError {
  return new TributaryError(
    ErrorCode.BAD_USER_INPUT,
    `The range holds more than ${MAX_REPLAY} of the endpoint's events, more than one replay sends: replay it in parts (an earlier until, then the rest from there)`,
    { details: { field: 'until', limit: MAX_REPLAY } },
  );
}
