/**
 * Child-process entry: `node bench/peers/serve.ts <peer>`, forked by `peer-process.ts` with an
 * IPC channel. Runs one peer server so its CPU is separate from the load client's, prints
 * `{"port":…,"path":…}` as its first stdout line once listening, answers `cpu` requests with
 * `process.cpuUsage()`, and stops on `stop` — or when the parent goes away (IPC disconnect), so
 * a crashed benchmark never leaves a server behind.
 */
import { isPeerName, type CpuReply, type ParentMessage, type PeerName, type ReadyLine, type RunningPeer } from './peer.ts';

async function startPeer(name: PeerName): Promise<RunningPeer> {
  // Imported lazily so each child loads only the server it runs.
  switch (name) {
    case 'tributary':
      return (await import('./tributary.ts')).startTributaryPeer();
    case 'yoga-graphql-ws':
      return (await import('./yoga-graphql-ws.ts')).startYogaGraphQLWsPeer();
  }
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? '';
  if (!isPeerName(name)) throw new Error(`unknown peer "${name}"`);
  if (!process.send) throw new Error('serve.ts must be started with an IPC channel (child_process.fork)');

  const peer = await startPeer(name);
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    // Exit even if a disposer leaves a handle open (PGlite, a lingering socket).
    const deadline = setTimeout(() => process.exit(code === 0 ? 3 : code), 5000);
    deadline.unref();
    peer.dispose().then(
      () => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`[${name}] dispose failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };

  process.on('message', (message: ParentMessage) => {
    if (message.type === 'cpu') {
      const { user, system } = process.cpuUsage();
      const reply: CpuReply = { type: 'cpu', requestId: message.requestId, user, system };
      process.send?.(reply);
    } else if (message.type === 'stop') {
      stop(0);
    }
  });
  process.once('disconnect', () => stop(0));
  // Ctrl-C reaches the whole process group: shut down cleanly rather than die mid-write.
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));

  const ready: ReadyLine = { port: peer.port, path: peer.path };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`serve.ts failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
