import type { BullmqScheduler } from './bullmq-scheduler.ts';
import type { DeliveryScheduler, LocalWake } from './delivery-scheduler.ts';
import type { DeliveryStatistics } from './delivery-statistics.ts';
import type { EndpointCache } from './endpoint-cache.ts';

/**
 * What every role holds of webhooks (built with the pipeline, whose router stores deliveries):
 * the endpoints, how deliveries are scheduled — BullMQ with Redis, the in-process loop's wake-up
 * otherwise — and the delivery table's statistics, which every inserter keeps current. Delivery
 * (workers) and the admin API build on it.
 */
export interface WebhookFanIn {
  readonly endpoints: EndpointCache;
  readonly scheduler: { readonly kind: 'bullmq'; readonly queue: BullmqScheduler } | { readonly kind: 'embedded'; readonly wake: LocalWake };
  readonly statistics: DeliveryStatistics;
}

/** The scheduler deliveries are handed to, whichever kind. */
export function deliveryScheduler(fanIn: WebhookFanIn): DeliveryScheduler {
  return fanIn.scheduler.kind === 'bullmq' ? fanIn.scheduler.queue : fanIn.scheduler.wake;
}
