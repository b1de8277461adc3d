import { isLoggedOutcome, LOGGED_OUTCOMES } from '../pipeline/webhooks/attempt-outcome.ts';
import type { AttemptRecord } from '../pipeline/webhooks/delivery-log.ts';
import type { Delivery, DeliveryState } from '../pipeline/webhooks/delivery-store.ts';
import type { EndpointInput, EndpointUpdate, EndpointWithSecret } from '../pipeline/webhooks/webhook-admin.ts';
import type { WebhookEndpoint } from '../pipeline/webhooks/endpoint-store.ts';
import { badUserInput, ErrorCode, TributaryError } from '../errors.ts';
import { scopeOf } from '../pipeline/scope.ts';
import type { ResolverContext } from './context.ts';
import { requireAdmin } from './require-admin.ts';

/** A page of the delivery log, newest first; `endCursor` goes into `after` for the next page. */
export interface LogPage<T> {
  readonly nodes: readonly T[];
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
}

export interface LogFilterArgs {
  readonly endpointId?: string | null;
  readonly eventType?: string | null;
  readonly eventId?: string | null;
  readonly since?: Date | null;
  readonly until?: Date | null;
  readonly first?: number | null;
  readonly after?: string | null;
}

const MAX_PAGE = 200;
/** An event type as a filter: what a publisher may name (`names.ts`), else no event has it. */
const MAX_EVENT_TYPE = 200;
const EVENT_TYPE = /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/;
/** An event id as a filter: what an event id can be (`evt_…`, a document snapshot's `snapshot_…`), printable and bounded; else no event has it. */
const MAX_EVENT_ID = 512;
const EVENT_ID = /^[\x21-\x7e]+$/;

function admin(context: ResolverContext) {
  requireAdmin(context.principal);
  return { scope: scopeOf(context.principal), webhooks: context.services.webhooks };
}

function pageArgs(args: LogFilterArgs) {
  const first = args.first ?? 50;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `first must be from 1 to ${MAX_PAGE}`, { details: { field: 'first' } });
  }
  const after = args.after ?? undefined;
  if (after !== undefined && !/^\d{1,18}$/.test(after)) throw badUserInput('after', 'after must be an endCursor of this log');
  if (args.eventType != null && (args.eventType.length > MAX_EVENT_TYPE || !EVENT_TYPE.test(args.eventType))) {
    throw badUserInput('eventType', `eventType must be an event type: up to ${MAX_EVENT_TYPE} letters, digits and _ . : / -`);
  }
  if (args.eventId != null && (args.eventId.length > MAX_EVENT_ID || !EVENT_ID.test(args.eventId))) {
    throw badUserInput('eventId', `eventId must be an event id: 1 to ${MAX_EVENT_ID} printable characters without spaces`);
  }
  if (args.since != null && args.until != null && args.until <= args.since) throw badUserInput('until', 'until must be after since');
  return {
    endpointId: args.endpointId ?? undefined,
    eventType: args.eventType ?? undefined,
    eventId: args.eventId ?? undefined,
    since: args.since ?? undefined,
    until: args.until ?? undefined,
    before: after,
    // One more than asked tells whether there is a next page.
    limit: first + 1,
    first,
  };
}

function pageOf<T extends { readonly id: string }>(rows: readonly T[], first: number): LogPage<T> {
  const nodes = rows.slice(0, first);
  return { nodes, endCursor: nodes.at(-1)?.id ?? null, hasNextPage: rows.length > first };
}

export function createWebhookEndpoint(context: ResolverContext, input: EndpointInput): Promise<EndpointWithSecret> {
  const { scope, webhooks } = admin(context);
  return webhooks.createEndpoint(scope, input);
}

export function updateWebhookEndpoint(context: ResolverContext, id: string, input: EndpointUpdate): Promise<WebhookEndpoint> {
  const { scope, webhooks } = admin(context);
  return webhooks.updateEndpoint(scope, id, input);
}

export function deleteWebhookEndpoint(context: ResolverContext, id: string): Promise<boolean> {
  const { scope, webhooks } = admin(context);
  return webhooks.deleteEndpoint(scope, id);
}

export function setWebhookEndpointEnabled(context: ResolverContext, id: string, enabled: boolean): Promise<WebhookEndpoint> {
  const { scope, webhooks } = admin(context);
  return webhooks.setEnabled(scope, id, enabled);
}

export function retryPendingWebhooks(context: ResolverContext, id: string): Promise<number> {
  const { scope, webhooks } = admin(context);
  return webhooks.retryNow(scope, id);
}

export function rotateWebhookSecret(context: ResolverContext, id: string, overlapSeconds: number): Promise<EndpointWithSecret> {
  const { scope, webhooks } = admin(context);
  return webhooks.rotateSecret(scope, id, overlapSeconds);
}

export function webhookEndpoints(context: ResolverContext): Promise<WebhookEndpoint[]> {
  const { scope, webhooks } = admin(context);
  return webhooks.endpoints(scope);
}

/** One of the caller's endpoints (of the ≤ 1,000 of its environment, its tenant's only for a tenant); null for any other id, one of another scope included. */
export async function webhookEndpoint(context: ResolverContext, id: string): Promise<WebhookEndpoint | null> {
  const { scope, webhooks } = admin(context);
  return (await webhooks.endpoints(scope)).find((endpoint) => endpoint.id === id) ?? null;
}

export async function webhookDeliveries(context: ResolverContext, args: LogFilterArgs & { readonly state?: DeliveryState | null }): Promise<LogPage<Delivery>> {
  const { scope, webhooks } = admin(context);
  const { first, ...filter } = pageArgs(args);
  return pageOf(await webhooks.deliveries(scope, { ...filter, state: args.state ?? undefined }), first);
}

export async function webhookAttempts(
  context: ResolverContext,
  args: LogFilterArgs & { readonly deliveryId?: string | null; readonly outcome?: string | null },
): Promise<LogPage<AttemptRecord>> {
  const { scope, webhooks } = admin(context);
  const { first, ...filter } = pageArgs(args);
  if (args.deliveryId != null && !/^\d{1,18}$/.test(args.deliveryId)) throw badUserInput('deliveryId', 'deliveryId is not a delivery id');
  const outcome = args.outcome ?? undefined;
  if (outcome !== undefined && !isLoggedOutcome(outcome)) throw badUserInput('outcome', `outcome must be one of ${LOGGED_OUTCOMES.join(', ')}`);
  return pageOf(await webhooks.attempts(scope, { ...filter, deliveryId: args.deliveryId ?? undefined, outcome }), first);
}

export function redeliverWebhook(context: ResolverContext, deliveryId: string): Promise<Delivery> {
  const { scope, webhooks } = admin(context);
  return webhooks.redeliver(scope, deliveryId);
}

export function replayWebhooks(context: ResolverContext, args: { endpointId: string; since: Date; until?: Date | null; onlyFailed?: boolean | null }): Promise<number> {
  const { scope, webhooks } = admin(context);
  const now = Date.now();
  // Events are from the Unix epoch on, and none is from the future: such a range holds nothing to replay.
  if (args.since.getTime() < 0 || args.since.getTime() > now) throw badUserInput('since', 'since must be a time from 1970 to now');
  if (args.until != null && args.until <= args.since) throw badUserInput('until', 'until must be after since');
  return webhooks.replay(scope, args.endpointId, { since: args.since, until: args.until ?? undefined, onlyFailed: args.onlyFailed ?? false });
}

export function sendTestWebhook(context: ResolverContext, endpointId: string): Promise<Delivery> {
  const { scope, webhooks } = admin(context);
  return webhooks.sendTest(scope, endpointId);
}
