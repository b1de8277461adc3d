/**
 * Where the gateway's lifecycle events (`gateway.connected`, `.disconnected`, `.subscribed`,
 * `.broadcast`: `events/gateway-event.ts`) enter the router, so webhook endpoints can select them.
 *
 * Only events some endpoint selects are routed: a server no endpoint listens to pays a look at an
 * empty list per connection, nothing more (the fan-out benchmark opens tens of thousands of
 * sockets). Gateway events are best-effort, unlike data events: routing never delays or fails
 * the socket it is about, a failure is logged and counted, and beyond `maxInFlight` routes at
 * once an event is dropped (logged once per overflow, counted) rather than queued without bound.
 */
import { componentLogger, type Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { gatewayEvent, type GatewayEventInput } from '../events/gateway-event.ts';
import type { EventRouter } from '../router/event-router.ts';
import { selectorOf, type SelectingEndpoint } from './endpoint-selection.ts';

export interface GatewayEmitter {
  /** Routes the event if an endpoint selects it; returns at once, whatever happens to it. */
  emit(input: GatewayEventInput): void;
  /**
   * Stops routing new events and waits for those in flight, at most `closeTimeoutMs` (a route
   * stuck on an unreachable log or database must not hold up shutdown). Idempotent; never throws.
   */
  close(): Promise<void>;
}

export interface GatewayEmitterOptions {
  readonly router: Pick<EventRouter, 'route'>;
  /** The endpoints every instance holds (`EndpointCache`), enabled or not, by app/env. */
  readonly endpoints: { inScope(app: string, env: string): readonly SelectingEndpoint[] };
  readonly logger: Logger;
  /** Counts events lost: dropped over the bound (`overflow`) or failed to route (`failed`). @default no metrics */
  readonly metrics?: Pick<Metrics, 'gatewayEventsLost'>;
  /** Routes in flight at once at most; more are dropped. @default 1000 */
  readonly maxInFlight?: number;
  /** Longest wait of `close()` for the routes in flight, in ms. @default 2000 */
  readonly closeTimeoutMs?: number;
}

export function createGatewayEmitter(options: GatewayEmitterOptions): GatewayEmitter {
  const logger = componentLogger(options.logger, 'gateway-events');
  const maxInFlight = options.maxInFlight ?? 1000;
  const inFlight = new Set<Promise<void>>();
  /** Dropped since the bound was last reached; reported when routing has room again. */
  let dropped = 0;
  let closed = false;

  const selected = (input: GatewayEventInput): boolean => {
    // Its environment's endpoints only (a look per connection: it must not cost the cluster's).
    const endpoints = options.endpoints.inScope(input.scope.app, input.scope.env);
    if (endpoints.length === 0) return false;
    const shape = { topic: input.event.type, type: input.event.type, metadata: { scope: input.scope, timestamp: 0 } };
    return endpoints.some(selectorOf(shape));
  };

  return {
    emit(input) {
      if (closed || !selected(input)) return;
      if (inFlight.size >= maxInFlight) {
        if (dropped === 0) logger.warn({ maxInFlight, type: input.event.type }, 'gateway events dropped: too many routes in flight');
        dropped += 1;
        options.metrics?.gatewayEventsLost.inc({ reason: 'overflow' });
        return;
      }
      if (dropped > 0) {
        logger.warn({ dropped }, 'gateway events routed again after an overflow');
        dropped = 0;
      }
      // Started now, in emit order (one connection's events keep their order); a synchronous
      // throw becomes a rejection like any other failure, never the caller's.
      const routing = new Promise((resolve) => resolve(options.router.route(gatewayEvent(input)))).then(
        () => undefined,
        (error: unknown) => {
          logger.warn({ err: error, type: input.event.type }, 'gateway event could not be routed');
          options.metrics?.gatewayEventsLost.inc({ reason: 'failed' });
        },
      );
      inFlight.add(routing);
      void routing.finally(() => inFlight.delete(routing));
    },
    async close() {
      closed = true;
      if (inFlight.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.closeTimeoutMs ?? 2000)));
      if ((await Promise.race([Promise.all(inFlight), timedOut])) === 'timeout') {
        logger.warn({ abandoned: inFlight.size }, 'gateway events still routing at shutdown; not waiting for them');
      }
      clearTimeout(timer);
    },
  };
}
