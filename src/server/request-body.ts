/**
 * A GraphQL POST's body read straight off the socket, before yoga sees the request: the direct
 * path (`graphql-post.ts`) needs it whole, and a request it leaves to yoga gets it as
 * `request.body` (the adapter's documented way in for a body a framework already read), so yoga
 * builds no stream pipeline around it either.
 *
 * Only a body whose `Content-Length` is within yoga's own limit is read here; anything else
 * (no length, chunked, over the limit) goes to yoga as a stream, so its answers — 413 included —
 * stay yoga's. Chunks are kept as they arrive: a client that declares a large body and sends
 * nothing holds no memory for it.
 */
import type { IncomingMessage } from 'node:http';

/** A Node request carrying a body read ahead (the adapter takes `body` as the request's body). */
export type RequestWithBody = IncomingMessage & { body?: Buffer };

/**
 * Reads the body when its declared length is from 1 to `maxBytes` (undefined otherwise: the body
 * is left to yoga). The promise resolves with the body, or with undefined when the client went
 * away before sending all of it.
 */
export function readDeclaredBody(request: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> | undefined {
  const declared = request.headers['content-length'];
  if (declared === undefined || request.headers['transfer-encoding'] !== undefined) return undefined;
  const length = Number(declared);
  if (!Number.isSafeInteger(length) || length < 1 || length > maxBytes) return undefined;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      // Node's parser frames the body by Content-Length: it never sends more than declared.
      chunks.push(chunk);
      received += chunk.length;
    };
    const done = (value: Buffer | undefined) => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('close', onClose);
      resolve(value);
    };
    const onEnd = () => done(received === length ? (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length)) : undefined);
    const onClose = () => done(undefined);
    request.on('data', onData);
    request.once('end', onEnd);
    request.once('close', onClose);
  });
}
