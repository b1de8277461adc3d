import type { Principal } from '../auth/principal.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { AlertAdmin } from '../pipeline/alerts/alert-admin.ts';
import type { AnalyticsReader } from '../pipeline/analytics/analytics-reader.ts';
import type { Dashboard } from '../pipeline/dashboard/cluster-dashboard.ts';
import type { CdcService } from '../pipeline/cdc/cdc-service.ts';
import type { CdcStore } from '../pipeline/cdc/cdc-store.ts';
import type { ChannelHub } from '../pipeline/channels/channel-hub.ts';
import type { PublishKeys } from '../pipeline/idempotency/publish-keys.ts';
import type { EventLog } from '../pipeline/log/event-log.ts';
import type { OutboxAdmin } from '../pipeline/outbox/outbox-admin.ts';
import type { EventRouter } from '../pipeline/router/event-router.ts';
import type { SubjectLimits } from '../pipeline/subject-limits.ts';
import type { DocumentService } from '../pipeline/sync/documents.ts';
import type { GatewayEmitter } from '../pipeline/webhooks/gateway-emitter.ts';
import type { WebhookAdmin } from '../pipeline/webhooks/webhook-admin.ts';

/** What `refreshAuth` did to its socket. */
export interface AuthRefresh {
  /** The socket's new expiry (the token's `exp`); null for a token without one. */
  readonly expiresAt: Date | null;
  /** Subscriptions the new token may no longer read, ended with FORBIDDEN (`reason: PERMISSION_REVOKED`). */
  readonly stoppedSubscriptions: number;
}

/** The live sockets of this process, for operations that act on the socket they arrive on. */
export interface SocketSessions {
  /**
   * Hands socket `connectionId` a new token. @throws TributaryError UNAUTHENTICATED (the token
   * fails verification; the socket keeps its old one) or FORBIDDEN (another subject or tenant:
   * the socket is closed).
   */
  refreshAuth(connectionId: string, token: string): Promise<AuthRefresh>;
}

/** What the API's resolvers may use; built once in `main.ts`. */
export interface Services {
  readonly channels: ChannelHub;
  readonly router: EventRouter;
  /** `publish`'s idempotency keys. */
  readonly publishKeys: PublishKeys;
  readonly log: EventLog;
  /** Per-subject rates: publishes and broadcasts, topic streams created (`head` through it, not `log.head`). */
  readonly subjectLimits: SubjectLimits;
  readonly documents: DocumentService;
  readonly cdc: CdcService;
  readonly cdcStore: CdcStore;
  readonly outbox: OutboxAdmin;
  readonly webhooks: WebhookAdmin;
  /** Alerts of the caller's environment: listing and acknowledgement. */
  readonly alerts: AlertAdmin;
  /** Gateway lifecycle events (here: `gateway.broadcast`), routed only when an endpoint selects them. */
  readonly gateway: GatewayEmitter;
  /** Per-topic analytics and hot topics (admin). */
  readonly analytics: AnalyticsReader;
  /** The cluster dashboard (the operators' admins). */
  readonly dashboard: { read(): Promise<Dashboard>; readonly operatorScope: { readonly app: string; readonly env: string } };
  /** This process's sockets (`refreshAuth`). */
  readonly sockets: SocketSessions;
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
