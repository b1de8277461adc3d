import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

/**
 * A TCP proxy in front of a real Redis that loses one reply on Tributary's command connection
 * (the one named `tributary`): the command reaches Redis and runs, and the connection is cut when
 * its reply comes back, before the reply is passed on. The outcome is unknown to the client — what
 * a connection dropping mid-request looks like. Closed after the test.
 */
export interface ReplyCuttingProxy {
  /** `redis://127.0.0.1:<proxy port>` */
  readonly url: string;
  /**
   * Arms the cut: the next command connection write whose RESP text matches `command` goes to
   * Redis, and the reply that follows is dropped with the connection. Resolves once it was cut.
   */
  cutReplyTo(command: RegExp): Promise<void>;
}

interface Armed {
  readonly command: RegExp;
  readonly cut: () => void;
}

export async function startReplyCuttingProxy(target: { readonly port: number }): Promise<ReplyCuttingProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let armed: Armed | undefined;
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target.port });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    let isCommandConnection = false;
    let cutOnReply: (() => void) | undefined;
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (/setname\r\n\$\d+\r\ntributary\r\n/i.test(text)) isCommandConnection = true;
      if (armed && isCommandConnection && armed.command.test(text)) {
        cutOnReply = armed.cut;
        armed = undefined;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (cutOnReply === undefined) return void client.write(chunk);
      close();
      cutOnReply();
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
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cutReplyTo(command) {
      return new Promise<void>((resolve) => (armed = { command, cut: resolve }));
    },
  };
}
