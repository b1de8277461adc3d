/**
 * What the fan-out workload sends and how the load client reads it back. The publisher posts the
 * same `publish` mutation body to every peer; its payload is ~200 bytes of JSON carrying the
 * event's sequence number and the time it was sent. The client finds both in the raw `next`
 * frame with `indexOf` and a digit loop — no `JSON.parse`, no string copy per message — because at
 * saturation it reads hundreds of thousands of frames a second on a core it shares.
 */
import type { SubscribePayload } from 'graphql-ws';

/** The one topic every subscriber listens to. */
const FANOUT_TOPIC = 'bench.fanout';

/** Bytes of the payload JSON (`{"seq":…,"sentAt":…,"pad":"xx…"}`), padded to this length. */
const PAYLOAD_BYTES = 200;

/** Every subscriber sends this, so on Tributary they all share one cohort. */
export const FANOUT_SUBSCRIPTION: SubscribePayload = {
  query: 'subscription Fanout($topic: String!) { events(topic: $topic) { id payload cursor } }',
  variables: { topic: FANOUT_TOPIC },
};

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

/** The HTTP body of `publish` for one event; `sentAt` is `clockMillis()` when it is sent. */
export function publishBody(seq: number, sentAt: number): string {
  const head = `{"seq":${seq},"sentAt":${sentAt.toFixed(3)},"pad":"`;
  const pad = 'x'.repeat(Math.max(0, PAYLOAD_BYTES - head.length - 2));
  const payload = `${head}${pad}"}`;
  return `{"query":${JSON.stringify(PUBLISH_QUERY)},"variables":{"topic":${JSON.stringify(FANOUT_TOPIC)},"payload":${payload}}}`;
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
 * (`connection_ack`, `error`, `complete`, `ping`…), which the caller then parses as JSON.
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
