import { Socket } from 'node:net';
import type WebSocket from 'ws';

/**
 * Server-to-client WebSocket text frames built in one buffer (RFC 6455 §5.2: FIN + opcode 1,
 * unmasked, 7/16/64-bit length) from pieces that are already UTF-8: the subscriber's own prefix
 * and the payload its whole cohort shares. It replaces, per subscriber and message, a string
 * concatenation, a UTF-8 encoding of the whole frame, a header allocation and a second write.
 */
export function textFrame(head: Buffer, body: Buffer, tail: Buffer): Buffer {
  const length = head.length + body.length + tail.length;
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81;
  if (headerLength === 2) {
    frame[1] = length;
  } else if (headerLength === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  let offset = headerLength;
  offset += head.copy(frame, offset);
  offset += body.copy(frame, offset);
  tail.copy(frame, offset);
  return frame;
}

/**
 * The TCP socket under a `ws` WebSocket, for writing prebuilt frames. Safe with
 * `perMessageDeflate: false` (the server's setting): ws then writes each message synchronously
 * and whole, so frames written here and by ws interleave only at frame boundaries, and the
 * bytes still count in `bufferedAmount`. It reads ws's private `_socket` (package.json pins ws
 * to its minor version for that); `undefined` when it is not a TCP socket, and the caller then
 * sends through ws's public `send`.
 */
export function rawSocketOf(socket: WebSocket): Socket | undefined {
  const raw = (socket as unknown as { _socket?: unknown })._socket;
  return raw instanceof Socket ? raw : undefined;
}

/** A received message's text, whatever shape `ws` handed it over in. */
export function rawDataToText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** Longest close reason RFC 6455 allows (a control frame payload is 125 bytes, 2 are the code). */
const MAX_CLOSE_REASON_BYTES = 123;

/** `reason` as a close frame can carry it: cut to what RFC 6455 allows. */
export function closeReason(reason: string): string {
  return truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
}

/** `text` cut to at most `maxBytes` of UTF-8 (a close reason's limit). */
function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= maxBytes) return text;
  // Cut on a character boundary: decoding a cut multi-byte sequence would yield U+FFFD (3 bytes).
  let end = maxBytes;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}
