/**
 * What the `webhooks` workload sends: the `publish` mutation that makes Tributary deliver (its
 * payload carries the event's `seq` and the time it was sent, like the fan-out payload; on the one
 * topic every endpoint selects, or — spread — on the topic of one endpoint), and — for
 * the arms that POST without Tributary (the naive BullMQ worker, the plain POST loop) — a body of
 * the shape and size Tributary delivers for such an event (`webhookBody` in
 * src/pipeline/webhooks/endpoint-selection.ts), so every arm hands the receiver the same bytes.
 */
import { randomBytes } from 'node:crypto';

/** The topic every endpoint selects in the all-endpoints steps (and the drain). */
export const WEBHOOK_TOPIC = 'bench.webhooks';

/**
 * The topic endpoint `index` alone selects in the spread steps. An endpoint selecting
 * `bench.webhooks` does not get these: an entry without `.*` matches its topic exactly.
 */
export function spreadTopic(index: number): string {
  return `${WEBHOOK_TOPIC}.${index}`;
}

/** Bytes of the payload JSON (`{"seq":…,"sentAt":…,"pad":"xx…"}`), padded to this length. */
const PAYLOAD_BYTES = 200;

const PUBLISH_QUERY = 'mutation Publish($topic: String!, $payload: JSON!) { publish(topic: $topic, payload: $payload) { id } }';

function payloadOf(seq: number, sentAt: number): string {
  const head = `{"seq":${seq},"sentAt":${sentAt.toFixed(3)},"pad":"`;
  return `${head}${'x'.repeat(Math.max(0, PAYLOAD_BYTES - head.length - 2))}"}`;
}

/** The HTTP body of `publish` for event `seq`, sent at `sentAt` (`clockMillis()`), on `topic`. */
export function webhookPublishBody(seq: number, sentAt: number, topic = WEBHOOK_TOPIC): string {
  return `{"query":${JSON.stringify(PUBLISH_QUERY)},"variables":{"topic":${JSON.stringify(topic)},"payload":${payloadOf(seq, sentAt)}}}`;
}

/** The body builder of a spread step over `endpoints`: event `seq` on the topic of endpoint `seq % endpoints`. */
export function spreadPublishBody(endpoints: number): (seq: number, sentAt: number) => string {
  return (seq, sentAt) => webhookPublishBody(seq, sentAt, spreadTopic(seq % endpoints));
}

/** An event id of the shape and length of Tributary's random ones (`evt_` + 16 characters). */
export function benchEventId(): string {
  return `evt_${randomBytes(12).toString('base64url')}`;
}

/**
 * The body Tributary delivers for event `seq` published by the development principal: the same
 * fields in the same order, the same payload.
 */
export function deliveredBody(seq: number, sentAt: number, id = benchEventId()): string {
  // A date of the shape Tributary writes (`sentAt` is the monotonic clock, not a date).
  const timestamp = new Date().toISOString();
  return `{"id":"${id}","type":"message","topic":"${WEBHOOK_TOPIC}","source":"socket","timestamp":"${timestamp}","tenant":"default","entity":null,"data":${payloadOf(seq, sentAt)}}`;
}
