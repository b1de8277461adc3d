import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { textFrame } from './frames.ts';
import { corkForThisTick } from './write-batcher.ts';

const CLOSING_BRACE = Buffer.from('}');

/**
 * The outbound side of one socket: every message leaves through `send` or `sendFrame`, bounded
 * and batched per tick. A client that does not read is closed instead of growing our memory
 * (`overflow`); it reconnects and resumes after the last cursor it received.
 */
export class SocketWriter {
  readonly #socket: WebSocket;
  /** The TCP socket under the WebSocket, for corking and prebuilt frames. */
  readonly #raw: Socket | undefined;
  readonly #maxBufferedBytes: number;
  readonly #overflow: () => void;

  constructor(socket: WebSocket, raw: Socket | undefined, maxBufferedBytes: number, overflow: () => void) {
    this.#socket = socket;
    this.#raw = raw;
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#overflow = overflow;
  }

  send(message: string): void {
    if (!this.#writable()) return;
    if (this.#raw) corkForThisTick(this.#raw);
    this.#socket.send(message);
  }

  /** A dispatched `next`: its frame built from this subscriber's prefix and the cohort's payload. */
  sendFrame(head: Buffer, payload: Buffer): void {
    if (!this.#writable()) return;
    const raw = this.#raw;
    if (!raw) {
      this.#socket.send(Buffer.concat([head, payload, CLOSING_BRACE]), { binary: false });
      return;
    }
    corkForThisTick(raw);
    raw.write(textFrame(head, payload, CLOSING_BRACE));
  }

  #writable(): boolean {
    if (this.#socket.readyState !== WebSocket.OPEN) return false;
    if (this.#socket.bufferedAmount > this.#maxBufferedBytes) {
      this.#overflow();
      return false;
    }
    return true;
  }
}
