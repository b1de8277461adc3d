/**
 * What a delivered `next` frame must be, byte for byte, but for the fields that legitimately vary
 * (the event's id and cursor, a document's revision): the load client books a frame as event `seq`
 * from the `"seq":` and `"sentAt":` it finds in it (`fanout-payload.ts`), which a frame of another
 * subscription, a partial payload or an error quoting them would pass as well. Every frame's
 * beginning is compared with `prefix` (one `Buffer.compare`); a sample of frames — every one while
 * probing — is matched whole by `mismatch`. A frame that fails either is not booked, and the step
 * says so (`fanout-ledger.ts`): the run fails for that peer.
 *
 * The checks are picked by name because the client runs in a process of its own.
 */
import { payloadJson } from './fanout-payload.ts';

export interface FrameCheck {
  /** Every frame of an event starts with these bytes. */
  readonly prefix: Buffer;
  /** Why the whole frame is not event `seq`'s as expected; undefined when it is. */
  mismatch(frame: Buffer, seq: number): string | undefined;
}

export const FRAME_CHECK_NAMES = ['fanout-event', 'document-change'] as const;
export type FrameCheckName = (typeof FRAME_CHECK_NAMES)[number];

/** Event ids and cursors: URL-safe characters (Tributary's, and `peers/event-ids.ts`'s of the same shape). */
const FANOUT_FRAME = /^\{"id":"0","type":"next","payload":\{"data":\{"events":\{"id":"evt_[A-Za-z0-9_-]+","payload":(\{"seq":(\d+),"sentAt":(\d+(?:\.\d+)?),"pad":"x*"\}),"cursor":"[A-Za-z0-9_-]+"\}\}\}\}$/;

/**
 * `events(topic) { id payload cursor }` for `publishBody(seq, sentAt)`: the payload as it was
 * published, re-serialized (a GraphQL server parses the JSON scalar and writes it again, so
 * `123.450` comes back as `123.45`) — its padding included, to the byte.
 */
function fanoutEventMismatch(frame: Buffer, seq: number): string | undefined {
  const text = frame.toString('utf8');
  const match = FANOUT_FRAME.exec(text);
  if (!match) return `not an events { id payload cursor } frame of subscription "0": ${clip(text)}`;
  const [, payload = '', seqText = '', sentAtText = ''] = match;
  if (Number(seqText) !== seq) return `seq ${seqText} booked as ${seq}: ${clip(text)}`;
  const expected = JSON.stringify(JSON.parse(payloadJson(seq, Number(sentAtText))) as unknown);
  if (payload !== expected) return `payload ${clip(payload)} is not the published ${clip(expected)}`;
  return undefined;
}

/** `document(service, id) { operation revision data }` after `mergeDocument` with the patch `{ seq, sentAt }` on `{}`. */
const DOCUMENT_FRAME = /^\{"id":"0","type":"next","payload":\{"data":\{"document":\{"operation":"UPDATED","revision":\d+,"data":\{"seq":(\d+),"sentAt":\d+(?:\.\d+)?\}\}\}\}\}$/;

function documentChangeMismatch(frame: Buffer, seq: number): string | undefined {
  const text = frame.toString('utf8');
  const match = DOCUMENT_FRAME.exec(text);
  if (!match) return `not a document { operation revision data } UPDATED frame of subscription "0" with data { seq, sentAt }: ${clip(text)}`;
  if (Number(match[1]) !== seq) return `seq ${match[1] ?? '?'} booked as ${seq}: ${clip(text)}`;
  return undefined;
}

const CHECKS: Readonly<Record<FrameCheckName, FrameCheck>> = {
  'fanout-event': { prefix: Buffer.from('{"id":"0","type":"next","payload":{"data":{"events":{"id":"evt_'), mismatch: fanoutEventMismatch },
  'document-change': { prefix: Buffer.from('{"id":"0","type":"next","payload":{"data":{"document":{"operation":"UPDATED","revision":'), mismatch: documentChangeMismatch },
};

export function frameCheck(name: FrameCheckName): FrameCheck {
  return CHECKS[name];
}

/** True when `frame` begins with the check's prefix. */
export function hasPrefix(check: FrameCheck, frame: Buffer): boolean {
  return frame.length >= check.prefix.length && check.prefix.compare(frame, 0, check.prefix.length) === 0;
}

function clip(text: string): string {
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}
