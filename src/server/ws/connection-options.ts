import type { TokenVerifier } from '../../auth/token-verifier.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { Dispatcher } from '../../pipeline/dispatch/dispatcher.ts';
import type { GatewayEmitter } from '../../pipeline/webhooks/gateway-emitter.ts';
import type { OperationExecutor } from './executor.ts';
import type { FilterBudget } from './filter-budget.ts';
import type { SocketSessionRegistry } from './socket-sessions.ts';
import type { SubjectQuota } from './subject-quota.ts';

/** What one `GraphQLWsConnection` works with: the server's parts and its limits. */
export interface ConnectionOptions {
  readonly verifier: TokenVerifier;
  readonly execute: OperationExecutor;
  readonly dispatcher: Dispatcher;
  /** Told when the socket is acknowledged, starts a subscription and closes (webhooks). */
  readonly gateway: Pick<GatewayEmitter, 'emit'> | undefined;
  /** Counts sockets closed for falling behind or refused at the subject's quota. */
  readonly metrics: Pick<Metrics, 'slowConsumers' | 'connectionsRefused'> | undefined;
  /** Where `refreshAuth` finds this socket. */
  readonly sessions: Pick<SocketSessionRegistry, 'add'> | undefined;
  /** The sockets each principal holds on this instance (`WS_MAX_CONNECTIONS_PER_SUBJECT`). */
  readonly quota: SubjectQuota;
  /** The filter bytes each principal's subscriptions hold on this instance (`WS_MAX_FILTER_BYTES_PER_SUBJECT`). */
  readonly filterBudget: FilterBudget;
  /** @see Limits.connectionInitTimeoutMs */
  readonly connectionInitTimeoutMs: number;
  /** @see Limits.tokenExpiryGraceMs */
  readonly tokenExpiryGraceMs: number;
  /** @see Limits.tokenExpiryNoticeMs */
  readonly tokenExpiryNoticeMs: number;
  /** @see Limits.maxSubscriptionsPerConnection */
  readonly maxOperations: number;
  /** @see Limits.maxSubscriptionBytesPerConnection */
  readonly maxOperationBytes: number;
  /** Bytes the socket may have queued for the client before it counts as a slow consumer. */
  readonly maxBufferedBytes: number;
  /** @see GraphQLWebSocketServerOptions.rawFrames */
  readonly rawFrames: boolean;
  readonly logger: Logger;
}
