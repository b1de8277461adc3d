import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { rawSocketOf, textFrame } from './frames.ts';
import { corkForThisTick } from './write-batcher.ts';

const CLOSING_BRACE = Buffer.from('}');

/** What a replay may leave queued on a socket before it waits, at most (a quarter of the bound when that is smaller). */
const MAX_REPLAY_QUEUE_BYTES = 1024 * 1024;

/**
 * The outbound side of one socket: every message leaves through `send` or `sendFrame`, bounded
 * and batched per tick. A client that does not read is closed instead of growing our memory
 * (`overflow`), and its socket cut at once; it reconnects and resumes after the last cursor it
 * received. The bound leaves room for the largest message the socket was sent on top: a message
 * larger than the bound alone (a CDC row, a document's diff: no payload limit sizes them) is
 * written whole, and the next one would otherwise cut a client that reads — and, resumed, be cut
 * again at the same message.
 */
export class SocketWriter {
  readonly #socket: WebSocket;
  /** The TCP socket under the WebSocket, for corking and prebuilt frames. */
  readonly #raw: Socket | undefined;
  /** The TCP socket under the WebSocket, whose `drain` paces replays (with or without prebuilt frames). */
  readonly #transport: Socket | undefined;
  readonly #maxBufferedBytes: number;
  readonly #replayQueueBytes: number;
  readonly #overflow: () => void;
  #drained: Promise<void> | undefined;
  /** The largest message sent on the socket so far, in bytes (of a string: its length). */
  #largest = 0;

  constructor(socket: WebSocket, raw: Socket | undefined, maxBufferedBytes: number, overflow: () => void) {
    this.#socket = socket;
    this.#raw = raw;
    this.#transport = raw ?? rawSocketOf(socket);
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#replayQueueBytes = Math.min(MAX_REPLAY_QUEUE_BYTES, Math.floor(maxBufferedBytes / 4));
    this.#overflow = overflow;
  }

  send(message: string): void {
    if (!this.#writable()) return;
    if (message.length > this.#largest) this.#largest = message.length;
    if (this.#raw) corkForThisTick(this.#raw);
    this.#socket.send(message);
  }

  /** A dispatched `next`: its frame built from this subscriber's prefix and the cohort's payload. */
  sendFrame(head: Buffer, payload: Buffer): void {
    if (!this.#writable()) return;
    const size = head.length + payload.length + 1;
    if (size > this.#largest) this.#largest = size;
    const raw = this.#raw;
    if (!raw) {
      this.#socket.send(Buffer.concat([head, payload, CLOSING_BRACE]), { binary: false });
      return;
    }
    corkForThisTick(raw);
    raw.write(textFrame(head, payload, CLOSING_BRACE));
  }

  /**
   * `SubscriberSink.drained` for the socket's subscriptions: undefined while a replay may write
   * on, else resolves once the TCP socket has handed all it holds to the kernel (`drain`) or the
   * WebSocket has closed. A replay waits past a fraction of the slow-consumer bound, so the rest
   * stays for live traffic, which alone decides whether a client is too slow. Past Node's own
   * high-water mark a `drain` is due (`writableNeedDrain`); below it nothing is worth waiting for.
   * Without a TCP socket to watch (see `rawSocketOf`), replays are not paced.
   */
  drained(): Promise<void> | undefined {
    const transport = this.#transport;
    const state = this.#socket.readyState;
    if (!transport || state === WebSocket.CLOSED) return undefined;
    if (state === WebSocket.OPEN && (this.#socket.bufferedAmount <= this.#replayQueueBytes || !transport.writableNeedDrain)) return undefined;
    // Queued past the mark, or closing: nothing more is sent then, and its subscriptions end at the close event.
    this.#drained ??= new Promise<void>((resolve) => {
      const settle = () => {
        transport.off('drain', settle);
        this.#socket.off('close', settle);
        this.#drained = undefined;
        resolve();
      };
      transport.on('drain', settle);
      this.#socket.on('close', settle);
    });
    return this.#drained;
  }

  #writable(): boolean {
    if (this.#socket.readyState !== WebSocket.OPEN) return false;
    if (this.#socket.bufferedAmount > this.#maxBufferedBytes + this.#largest) {
      this.#overflow();
      // The close frame `overflow` queued waits behind all the client did not read: it would come
      // late or never, and until ws's closing handshake (30 s) or the keep-alive gave up, the socket
      // would keep its buffer — and its subject's place, which is given back only when it is gone.
      this.#socket.terminate();
      return false;
    }
    return true;
  }
}
