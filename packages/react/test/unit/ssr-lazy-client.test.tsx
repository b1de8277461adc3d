// Server rendering with a real client: created with `lazy: true` for the render, it opens no
// socket (the hooks subscribe in effects, which never run on the server); its first use does.
import { createServer } from 'node:net';
import { renderToString } from 'react-dom/server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { createClient, type ClientOptions } from '@tributary/client';
import { TributaryProvider, useConnectionState, useEvents, useRealtime } from '../../src/index.ts';

function Page() {
  const { records, status } = useRealtime('contacts');
  const events = useEvents('orders');
  return (
    <p>
      {useConnectionState()} {status} {records.length} {events.status}
    </p>
  );
}

/** A client whose sockets are counted when constructed (graphql-ws constructs one at once when it connects). */
async function countingClient(options: Partial<ClientOptions>): Promise<{ client: ReturnType<typeof createClient>; sockets: () => number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  let sockets = 0;
  class CountingWebSocket extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      sockets += 1;
    }
  }
  const { port } = server.address() as { port: number };
  const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: CountingWebSocket, onError: () => {}, ...options });
  onTestFinished(() => client.close());
  return { client, sockets: () => sockets };
}

describe('server rendering with a real client', () => {
  it('opens no socket with a lazy client, and opens one at its first use', async () => {
    const { client, sockets } = await countingClient({ lazy: true });
    const html = renderToString(
      <TributaryProvider client={client}>
        <Page />
      </TributaryProvider>,
    );
    expect(html).toBe('<p>connecting<!-- --> <!-- -->loading<!-- --> <!-- -->0<!-- --> <!-- -->idle</p>');
    expect(sockets()).toBe(0);
    client.liveModel('contacts').close();
    expect(sockets()).toBe(1);
  });

  it('connects at once without `lazy` (the default)', async () => {
    const { sockets } = await countingClient({});
    expect(sockets()).toBe(1);
  });
});
