/**
 * A GraphQL POST's body read straight off the socket, before yoga sees the request. Handed to
 * yoga as `request.body` (the adapter's documented way in for a body a framework already read),
 * it skips the Fetch-API stream pipeline yoga otherwise builds around every request — an abort
 * controller, a transform stream and their events, about a third of a small mutation's cost.
 *
 * Only a body whose `Content-Length` is within yoga's own limit is read here; anything else
 * (no length, chunked, over the limit) goes to yoga as a stream, so its answers — 413 included —
 * stay yoga's.
 */
import type { IncomingMessage } from 'node:http';

/** A Node request carrying a body read ahead (the adapter takes `body` as the request's body). */
export type RequestWithBody = IncomingMessage & { body?: Buffer };

/**
 * Reads the body when its declared length is from 1 to `maxBytes`; resolves with undefined when
 * it leaves the body to yoga, or when the client went away before sending all of it.
 */
export function readDeclaredBody(request: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> | undefined {
  const declared = request.headers['content-length'];
  if (declared === undefined || request.headers['transfer-encoding'] !== undefined) return undefined;
  const length = Number(declared);
  if (!Number.isSafeInteger(length) || length < 1 || length > maxBytes) return undefined;
  return new Promise((resolve) => {
    const body = Buffer.allocUnsafe(length);
    let received = 0;
    const onData = (chunk: Buffer) => {
      // Node's parser frames the body by Content-Length: it never sends more than declared.
      received += chunk.copy(body, received);
    };
    const done = (value: Buffer | undefined) => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('close', onClose);
      resolve(value);
    };
    const onEnd = () => done(received === length ? body : undefined);
    const onClose = () => done(undefined);
    request.on('data', onData);
    request.once('end', onEnd);
    request.once('close', onClose);
  });
}
