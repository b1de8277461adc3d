/**
 * A minimal WebSocket client (RFC 6455) over `net`, for the fan-out load client only: at
 * saturation one process reads hundreds of thousands of frames a second from 1,000 sockets on a
 * core it shares with the server, and `ws`'s per-frame work (a Writable stream, events, buffer
 * lists) cost it as much as the raw server spends sending them. This reads the frames straight
 * off the TCP socket's chunks and hands each payload over as a view into the chunk, no copy.
 *
 * Enough of the protocol for a client of servers we trust on loopback: opening handshake with
 * a subprotocol (accept key checked), unmasked server frames (text, binary, continuation,
 * ping → pong, close → close), masked client text frames. No extensions (no permessage-deflate
 * is offered, so none may be used), no UTF-8 validation, no size limit beyond the server's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE_CONTINUATION = 0x0;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;

export interface LeanWebSocketHandlers {
  /** One complete message; `payload` is only valid during the call (it views the read chunk). */
  onMessage(payload: Buffer): void;
  /** The connection ended: the server's close code and reason (1006 and '' when it just went away). */
  onClose(code: number, reason: string): void;
}

export interface LeanWebSocket {
  /** Sends a text message. */
  send(text: string): void;
  /** Starts the closing handshake; the socket ends once the server answers (or at once if it cannot). */
  close(code: number, reason: string): void;
  /** Drops the TCP connection. */
  terminate(): void;
  readonly closed: boolean;
}

export interface LeanWebSocketOptions {
  /** `ws://host:port/path` */
  readonly url: string;
  readonly protocol: string;
  /** Time the opening handshake may take, in ms. @default 10000 */
  readonly timeoutMs?: number;
}

/** Opens a connection and completes the opening handshake; the handlers receive everything after it. */
export function connectLeanWebSocket(options: LeanWebSocketOptions, handlers: LeanWebSocketHandlers): Promise<LeanWebSocket> {
  const url = new URL(options.url);
  if (url.protocol !== 'ws:') throw new Error(`only ws: URLs are supported, got ${options.url}`);
  const key = randomBytes(16).toString('base64');
  const expectedAccept = createHash('sha1').update(key + GUID).digest('base64');
  const socket = connect({ host: url.hostname, port: Number(url.port || 80), noDelay: true });
  const timeoutMs = options.timeoutMs ?? 10_000;

  return new Promise<LeanWebSocket>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`${options.url}: no handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', fail);
    socket.once('close', () => fail(new Error(`${options.url}: closed during the handshake`)));
    socket.once('connect', () => {
      socket.write(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${options.protocol}\r\n\r\n`,
      );
    });
    const onHandshakeData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const headers = new Map(lines.slice(1).map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? '')) return fail(new Error(`${options.url}: handshake answered ${lines[0] ?? '?'}`));
      if (headers.get('sec-websocket-accept') !== expectedAccept) return fail(new Error(`${options.url}: wrong Sec-WebSocket-Accept`));
      if (headers.get('sec-websocket-protocol') !== options.protocol) return fail(new Error(`${options.url}: subprotocol ${options.protocol} refused`));
      if (headers.has('sec-websocket-extensions')) return fail(new Error(`${options.url}: an extension was negotiated that was not offered`));
      clearTimeout(timer);
      socket.removeAllListeners();
      const connection = createConnection(socket, handlers);
      const rest = head.subarray(end + 4);
      resolve(connection.socket);
      if (rest.length > 0) connection.onData(rest);
    };
    socket.on('data', onHandshakeData);
  });
}

function createConnection(socket: Socket, handlers: LeanWebSocketHandlers): { socket: LeanWebSocket; onData: (chunk: Buffer) => void } {
  let pending: Buffer | undefined;
  let fragments: Buffer[] | undefined;
  let closed = false;
  let closeCode = 1006;
  let closeReason = '';
  let sentClose = false;

  const sendFrame = (opcode: number, payload: Buffer) => {
    if (socket.destroyed || sentClose) return;
    const length = payload.length;
    const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8;
    const frame = Buffer.allocUnsafe(2 + lengthBytes + 4 + length);
    frame[0] = 0x80 | opcode;
    if (lengthBytes === 0) frame[1] = 0x80 | length;
    else if (lengthBytes === 2) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(length), 2);
    }
    // Client frames must be masked (RFC 6455 §5.3).
    const maskAt = 2 + lengthBytes;
    randomBytes(4).copy(frame, maskAt);
    for (let i = 0; i < length; i += 1) frame[maskAt + 4 + i] = payload[i]! ^ frame[maskAt + (i & 3)]!;
    socket.write(frame);
    if (opcode === OPCODE_CLOSE) sentClose = true;
  };

  const onFrame = (fin: boolean, opcode: number, payload: Buffer) => {
    switch (opcode) {
      case OPCODE_TEXT:
      case OPCODE_BINARY:
        if (fin) handlers.onMessage(payload);
        else fragments = [Buffer.from(payload)];
        return;
      case OPCODE_CONTINUATION:
        if (!fragments) return;
        fragments.push(Buffer.from(payload));
        if (fin) {
          const message = Buffer.concat(fragments);
          fragments = undefined;
          handlers.onMessage(message);
        }
        return;
      case OPCODE_CLOSE:
        if (payload.length >= 2) {
          closeCode = payload.readUInt16BE(0);
          closeReason = payload.subarray(2).toString('utf8');
        }
        sendFrame(OPCODE_CLOSE, payload.subarray(0, 2));
        socket.end();
        return;
      case OPCODE_PING:
        sendFrame(0xa, Buffer.from(payload));
        return;
      default:
        return; // pong, reserved
    }
  };

  const onData = (chunk: Buffer) => {
    const data = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    let offset = 0;
    while (data.length - offset >= 2) {
      const first = data[offset]!;
      const second = data[offset + 1]!;
      let length = second & 0x7f;
      let headerLength = 2;
      if (length === 126) {
        if (data.length - offset < 4) break;
        length = data.readUInt16BE(offset + 2);
        headerLength = 4;
      } else if (length === 127) {
        if (data.length - offset < 10) break;
        length = Number(data.readBigUInt64BE(offset + 2));
        headerLength = 10;
      }
      if ((second & 0x80) !== 0) headerLength += 4; // a masked server frame is a protocol error; skip the key rather than misread
      if (data.length - offset < headerLength + length) break;
      const start = offset + headerLength;
      offset = start + length;
      onFrame((first & 0x80) !== 0, first & 0x0f, data.subarray(start, offset));
    }
    // A partial frame waits for the next chunk, copied so the big read chunk can be freed.
    if (offset < data.length) pending = Buffer.from(data.subarray(offset));
  };

  socket.on('data', onData);
  socket.on('error', () => undefined); // followed by 'close'
  socket.once('close', () => {
    closed = true;
    handlers.onClose(closeCode, closeReason);
  });

  return {
    onData,
    socket: {
      send: (text) => sendFrame(OPCODE_TEXT, Buffer.from(text)),
      close(code, reason) {
        const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
        payload.writeUInt16BE(code, 0);
        payload.write(reason, 2);
        sendFrame(OPCODE_CLOSE, payload);
        // The server answers with its close and then ends; if it does not, end anyway.
        setTimeout(() => socket.destroy(), 2000).unref();
      },
      terminate: () => socket.destroy(),
      get closed() {
        return closed;
      },
    },
  };
}
