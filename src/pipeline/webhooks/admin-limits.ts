/**
 * What an environment's admin may ask of the webhooks API (webhook-admin.ts): the bounds of an
 * endpoint's settings, of replays and of an environment's endpoints, and the shape of an id.
 */
export const DEFAULT_CONCURRENCY = 10;
export const MAX_CONCURRENCY = 100;
export const MAX_RATE = 10_000;
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;
export const MAX_REPLAY = 10_000;
/**
 * Deliveries made by replays, redeliveries and tests an endpoint may have pending at once: two
 * replays' worth. Past it an admin waits for them to go out, so no loop of admin calls can pile up
 * work without bound (see admin-deliveries.ts).
 */
export const MAX_ADMIN_PENDING = 2 * MAX_REPLAY;
/** Endpoints of one environment at most: every instance keeps them all in memory and checks each routed event against them. */
export const MAX_ENDPOINTS = 1_000;
/** Endpoints of one tenant at most: no tenant takes the whole environment's share. */
export const MAX_TENANT_ENDPOINTS = 100;
export const MAX_DESCRIPTION = 1_000;
/** What `newEndpointId` makes: anything else is no endpoint, and never reaches a query. */
export const ENDPOINT_ID = /^ep_[A-Za-z0-9_-]{16}$/;
/** Control characters (tab and line breaks aside): Postgres refuses NUL in text, and none belongs in a name or a note. */
export const CONTROL = /[^\P{Cc}\t\n\r]/u;
