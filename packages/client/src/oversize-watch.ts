/**
 * Which operation a socket was closed for when the server closed it with 1009 (a message larger
 * than its `WS_MAX_PAYLOAD_BYTES`). The protocol acknowledges no `subscribe`, but the server reads
 * a socket's messages in order and closes it as it reads the one too big: an answer to an
 * operation (a result, an error, its completion) says it read that operation's frame and every
 * one sent before. The frame too big is so among those sent after the last one answered; the
 * largest of them is taken for it — one operation per 1009, so a subscription resent with the
 * same frame on every socket ends after a bounded number of sockets instead of closing them all.
 *
 * A frame over the client's own `maxMessageBytes` is never sent (see `Session.stream`): this is
 * the backstop for a server whose limit is lower than the client was told.
 */

/** The id graphql-ws puts in a frame is ours (a counter, see connection.ts): never longer than this. */
const ID_PLACEHOLDER = '0'.repeat(20);

/** The UTF-8 bytes of the `subscribe` frame carrying `payload` (with the longest id we generate). */
export function frameBytes(payload: { readonly query: string; readonly variables: unknown }): number {
  return utf8Length(JSON.stringify({ id: ID_PLACEHOLDER, type: 'subscribe', payload }));
}

/** UTF-8 length without encoding (a frame may be megabytes). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

/** One socket's operations sent and not answered yet: where a 1009 came from. */
export class OversizeWatch {
  /** Frames sent and not known read, by their order of sending: their bytes. */
  readonly #unanswered = new Map<number, number>();
  #sent = 0;
  /** The operation taken for the 1009, once asked (the socket is gone then: nothing more is sent). */
  #culprit: number | undefined | null = null;

  /** A frame of `bytes` is being sent: its number, in order of sending. */
  sent(bytes: number): number {
    this.#sent += 1;
    this.#unanswered.set(this.#sent, bytes);
    return this.#sent;
  }

  /** The server answered operation `sent`: it read its frame and every one sent before. */
  answered(sent: number): void {
    for (const each of this.#unanswered.keys()) {
      if (each > sent) break;
      this.#unanswered.delete(each);
    }
  }

  /** The operation the server closed the socket for (1009): the largest frame not known read; undefined if none. */
  culprit(): number | undefined {
    if (this.#culprit !== null) return this.#culprit;
    let largest: number | undefined;
    let largestBytes = -1;
    for (const [each, bytes] of this.#unanswered) {
      if (bytes > largestBytes) {
        largest = each;
        largestBytes = bytes;
      }
    }
    this.#culprit = largest;
    return largest;
  }
}
