import type { Principal } from '../auth/principal.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { CdcService } from '../pipeline/cdc/cdc-service.ts';
import type { CdcStore } from '../pipeline/cdc/cdc-store.ts';
import type { ChannelHub } from '../pipeline/channels/channel-hub.ts';
import type { EventLog } from '../pipeline/log/event-log.ts';
import type { OutboxAdmin } from '../pipeline/outbox/outbox-admin.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';
import type { DocumentService } from '../pipeline/sync/documents.ts';
import type { GatewayEmitter } from '../pipeline/webhooks/gateway-emitter.ts';
import type { WebhookAdmin } from '../pipeline/webhooks/webhook-admin.ts';

/** What the API's resolvers may use; built once in `main.ts`. */
export interface Services {
  readonly channels: ChannelHub;
  readonly router: EventRouter;
  readonly log: EventLog;
  readonly documents: DocumentService;
  readonly cdc: CdcService;
  readonly cdcStore: CdcStore;
  readonly outbox: OutboxAdmin;
  readonly webhooks: WebhookAdmin;
  /** Gateway lifecycle events (here: `gateway.broadcast`), routed only when an endpoint selects them. */
  readonly gateway: GatewayEmitter;
  /** Counts subscriptions refused silently (the resolvers' only metric). */
  readonly metrics: Pick<Metrics, 'subscriptionsDenied'>;
  readonly logger: Logger;
  readonly limits: {
    /** Largest event payload accepted by `publish`, in bytes of JSON. */
    readonly maxEventPayloadBytes: number;
    /** `statement_timeout` of a `records` page read, in ms. */
    readonly recordsStatementTimeoutMs: number;
  };
}

/** The per-operation context every resolver receives. */
export interface ResolverContext {
  /** From a verified token (or the development principal); never from client input. */
  readonly principal: Principal;
  readonly services: Services;
  /** The WebSocket connection the operation arrived on; undefined over HTTP. */
  readonly connectionId: string | undefined;
}
