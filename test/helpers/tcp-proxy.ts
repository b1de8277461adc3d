import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

/** A loopback TCP proxy to `targetPort` whose connections a test can cut. */
export interface TcpProxy {
  readonly port: number;
  /** Open proxied connections. */
  readonly connections: number;
  /** Cuts every proxied connection (both sides). */
  dropAll(): void;
  /** While refusing, new connections are closed at once. */
  refuse(refusing: boolean): void;
  /**
   * While on, every byte of the open connections is swallowed in both directions and the sockets
   * stay open — a peer that stopped answering (a sleeping laptop, a dead NAT entry). New
   * connections pass.
   */
  blackhole(on: boolean): void;
  /**
   * Loses one reply: the next write from a client whose text matches `command` goes to the target,
   * and the connection is cut when the reply comes back, before the reply is passed on — the
   * outcome is unknown to the client, as when a connection drops mid-request. With
   * `connectionName`, only a Redis connection that named itself so (`CLIENT SETNAME`) is armed.
   * Resolves once the reply was cut.
   */
  cutReplyTo(command: RegExp, options?: { readonly connectionName?: string }): Promise<void>;
}

export interface TcpProxyOptions {
  /** Holds every chunk from the target back this long before passing it on (a slow link). @default 0 */
  readonly replyDelayMs?: number;
}

interface ArmedCut {
  readonly command: RegExp;
  readonly connectionName: string | undefined;
  readonly cut: () => void;
}

/** Starts a proxy, closed when the test finishes. */
export async function startTcpProxy(targetPort: number, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const delay = options.replyDelayMs ?? 0;
  const pairs = new Set<[Socket, Socket]>();
  const holed = new WeakSet<Socket>();
  let refusing = false;
  let armed: ArmedCut | undefined;
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    let connectionName: string | undefined;
    let seenBytes = 0;
    let cutOnReply: (() => void) | undefined;
    client.on('data', (chunk: Buffer) => {
      if (holed.has(client)) return;
      // A Redis client names itself in its first commands (ioredis: CLIENT SETNAME on connect).
      if (connectionName === undefined && seenBytes < 4096) {
        connectionName = /setname\r\n\$\d+\r\n([^\r]*)\r\n/i.exec(chunk.toString('latin1'))?.[1];
        seenBytes += chunk.length;
      }
      if (armed) {
        const text = chunk.toString('latin1');
        if ((armed.connectionName === undefined || armed.connectionName === connectionName) && armed.command.test(text)) {
          cutOnReply = armed.cut;
          armed = undefined;
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (holed.has(client)) return;
      if (cutOnReply) {
        close();
        cutOnReply();
        return;
      }
      if (delay === 0) client.write(chunk);
      else setTimeout(() => client.writable && client.write(chunk), delay);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const [client, upstream] of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return pairs.size;
    },
    refuse(value) {
      refusing = value;
    },
    blackhole(on) {
      for (const [client] of pairs) {
        if (on) holed.add(client);
        else holed.delete(client);
      }
    },
    cutReplyTo(command, cutOptions = {}) {
      return new Promise<void>((resolve) => (armed = { command, connectionName: cutOptions.connectionName, cut: resolve }));
    },
    dropAll() {
      for (const [client, upstream] of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
    },
  };
}
