/**
 * What the fan-out workload sends and how the load client reads it back. The publisher posts the
 * same `publish` mutation body to every peer; its payload is ~200 bytes of JSON carrying the
 * event's sequence number and the time it was due to be sent. The client finds both in the raw `next`
 * frame with `indexOf` and a digit loop — no `JSON.parse`, no string copy per message — because at
 * saturation it reads hundreds of thousands of frames a second on a core it shares.
 */
import type { SubscribePayload } from 'graphql-ws';

/** The one topic every subscriber listens to. */
const FANOUT_TOPIC = 'bench.fanout';

/** Bytes of the payload JSON (`{"seq":…,"sentAt":…,"pad":"xx…"}`), padded to this length. */
const PAYLOAD_BYTES = 200;

/** Every subscriber sends this, so on Tributary they all share one cohort: the best case. */
export const FANOUT_SUBSCRIPTION: SubscribePayload = {
  query: 'subscription Fanout($topic: String!) { events(topic: $topic) { id payload cursor } }',
  variables: { topic: FANOUT_TOPIC },
};

/**
 * Subscriber `index`'s operation when subscribers do not share one: its own operation name and
 * its own `where` filter value (`payload.seq` greater than −(index + 1), which every event's seq
 * is), so Tributary keeps a cohort per subscriber — one filter and one execution per subscriber
 * and event, as a GraphQL server without cohorts does anyway — while every subscriber still
 * receives every event, in the same frame as `FANOUT_SUBSCRIPTION`'s.
 */
export function distinctFanoutSubscription(index: number): SubscribePayload {
  const name = `Fanout${index}`;
  return {
    query: `subscription ${name}($topic: String!, $where: EventWhere) { events(topic: $topic, where: $where) { id payload cursor } }`,
    operationName: name,
    variables: { topic: FANOUT_TOPIC, where: { field: 'payload.seq', gt: -(index + 1) } },
  };
}

const PUBLISH_QUERY = 'mutation Publish($topic: String!, $payload: JSON!) { publish(topic: $topic, payload: $payload) { id } }';

/**
 * The machine's monotonic clock (CLOCK_MONOTONIC: since boot), in ms with µs resolution: comparable
 * between processes on one machine, and moved by no change of the wall clock. A process's
 * `performance.timeOrigin` is the wall clock read once at its start — a step of the clock between
 * two processes' starts (this VM's clock is set from the host's) would shift every latency from one
 * to the other by that much, for as long as they run. Not a date.
 */
export function clockMillis(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The event's payload JSON as published: `{"seq":…,"sentAt":…,"pad":"xx…"}`, `PAYLOAD_BYTES` long. */
export function payloadJson(seq: number, sentAt: number): string {
  const head = `{"seq":${seq},"sentAt":${sentAt.toFixed(3)},"pad":"`;
  const pad = 'x'.repeat(Math.max(0, PAYLOAD_BYTES - head.length - 2));
  return `${head}${pad}"}`;
}

/** The HTTP body of `publish` for one event; `sentAt` is `clockMillis()` when it is due (see `publisher.ts`). */
export function publishBody(seq: number, sentAt: number): string {
  return `{"query":${JSON.stringify(PUBLISH_QUERY)},"variables":{"topic":${JSON.stringify(FANOUT_TOPIC)},"payload":${payloadJson(seq, sentAt)}}}`;
}

const SEQ_MARKER = Buffer.from('"seq":');
const SENT_AT_MARKER = Buffer.from('"sentAt":');
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const DOT = 0x2e;

/** One delivered event as read from a `next` frame. */
export interface Delivery {
  seq: number;
  sentAt: number;
}

/**
 * Reads `seq` and `sentAt` from a frame into `into`; false when the frame carries no event
 * (`connection_ack`, `error`, `complete`, `ping`…), which the caller then parses as JSON. It reads
 * only those two numbers: whether the rest of the frame is what it should be is `frame-checks.ts`'s.
 */
export function readDelivery(frame: Buffer, into: Delivery): boolean {
  const seqAt = frame.indexOf(SEQ_MARKER);
  if (seqAt === -1) return false;
  let index = seqAt + SEQ_MARKER.length;
  let seq = 0;
  for (let byte = frame[index]; byte !== undefined && byte >= DIGIT_0 && byte <= DIGIT_9; byte = frame[++index]) {
    seq = seq * 10 + (byte - DIGIT_0);
  }
  const sentAtAt = frame.indexOf(SENT_AT_MARKER, index);
  if (sentAtAt === -1) return false;
  index = sentAtAt + SENT_AT_MARKER.length;
  let whole = 0;
  for (let byte = frame[index]; byte !== undefined && byte >= DIGIT_0 && byte <= DIGIT_9; byte = frame[++index]) {
    whole = whole * 10 + (byte - DIGIT_0);
  }
  let fraction = 0;
  let scale = 1;
  if (frame[index] === DOT) {
    for (let byte = frame[++index]; byte !== undefined && byte >= DIGIT_0 && byte <= DIGIT_9; byte = frame[++index]) {
      fraction = fraction * 10 + (byte - DIGIT_0);
      scale *= 10;
    }
  }
  into.seq = seq;
  into.sentAt = whole + fraction / scale;
  return true;
}
