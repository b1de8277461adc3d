/**
 * Child-process entry: `node bench/peers/serve.ts <peer>`, forked by `peer-process.ts` with an
 * IPC channel. Runs one peer server so its CPU is separate from the load client's, prints
 * `{"port":…,"path":…}` as its first stdout line once listening, answers `cpu` requests with
 * `process.cpuUsage()` and `memory` requests with `process.memoryUsage()` after a full GC (the
 * parent forks it with `--expose-gc`), and stops on `stop` — or when the parent goes away (IPC
 * disconnect), so a crashed benchmark never leaves a server behind.
 *
 * `tributary-redis` and `tributary-redis-async` read `REDIS_URL` (and, when set, `REDIS_KEY_PREFIX`)
 * from their environment (the parent starts the Redis). Every Tributary peer also takes `JWT_SECRET` and the `CDC_*` settings from it
 * (the `cdc` workload: tokens instead of the development principal, a slot of its own);
 * `pg-redis-graphql-ws` is configured by its environment only (see `pg-redis-graphql-ws.ts`).
 */
import {
  isPeerName,
  type CpuReply,
  type MemoryReply,
  type ParentMessage,
  type PeerName,
  type ReadyLine,
  type RunningPeer,
} from './peer.ts';

/** Tributary settings a workload may pass through the environment. */
const TRIBUTARY_SETTINGS = [
  'JWT_SECRET',
  // The `reconnect` workload: a server restarted on the port it had.
  'PORT',
  'DATABASE_URL',
  'CDC_RELOAD_INTERVAL_MS',
  // The `webhooks` workload: receivers on loopback, and the delivery concurrency.
  'WEBHOOK_ALLOW_PRIVATE_TARGETS',
  'WEBHOOK_CONCURRENCY',
] as const;

function tributarySettings(): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const name of TRIBUTARY_SETTINGS) {
    const value = process.env[name];
    if (value !== undefined) settings[name] = value;
  }
  return settings;
}

function requiredEnv(peer: PeerName, name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${peer} needs ${name} in its environment`);
  return value;
}

async function startPeer(name: PeerName): Promise<RunningPeer> {
  // Imported lazily so each child loads only the server it runs.
  switch (name) {
    case 'tributary':
      return (await import('./tributary.ts')).startTributaryPeer({ settings: tributarySettings() });
    case 'tributary-no-analytics':
      // The same server with per-topic analytics off: what counting on the hot path costs.
      return (await import('./tributary.ts')).startTributaryPeer({ settings: { ...tributarySettings(), ANALYTICS_ENABLED: 'false' } });
    case 'tributary-redis':
    case 'tributary-redis-async': {
      // Its own key prefix: peers may share the benchmark's Redis. A workload that hands one
      // prefix from process to process (a queue filled by one, worked by the next) sets it.
      const redis = { url: requiredEnv(name, 'REDIS_URL'), keyPrefix: process.env['REDIS_KEY_PREFIX'] ?? `${name}-${process.pid}:` };
      return (await import('./tributary.ts')).startTributaryPeer({
        redis,
        durability: name === 'tributary-redis' ? 'sync' : 'async',
        settings: tributarySettings(),
      });
    }
    case 'pg-redis-graphql-ws':
      return (await import('./pg-redis-graphql-ws.ts')).startPgRedisGraphQLWsPeer({
        databaseUrl: requiredEnv(name, 'CDC_DATABASE_URL'),
        table: requiredEnv(name, 'CDC_TABLE'),
        model: requiredEnv(name, 'CDC_MODEL'),
        module: requiredEnv(name, 'CDC_MODULE'),
        slotName: requiredEnv(name, 'CDC_SLOT_NAME'),
        publicationName: requiredEnv(name, 'CDC_PUBLICATION_NAME'),
        redisUrl: requiredEnv(name, 'REDIS_URL'),
        jwtSecret: requiredEnv(name, 'JWT_SECRET'),
      });
    case 'yoga-graphql-ws':
      return (await import('./yoga-graphql-ws.ts')).startYogaGraphQLWsPeer();
    case 'plain-graphql-ws':
      return (await import('./plain-graphql-ws.ts')).startPlainGraphQLWsPeer();
    case 'raw-ws':
      return (await import('./raw-ws.ts')).startRawWsPeer();
  }
}

/** Memory after a full collection: what is live, not what happens to await the next GC. */
function sampleMemory(requestId: number): MemoryReply {
  const gc = (globalThis as { gc?: () => void }).gc;
  // Twice: the first pass can leave finalizer-reachable objects for the second.
  gc?.();
  gc?.();
  const { rss, heapUsed, external } = process.memoryUsage();
  return { type: 'memory', requestId, rss, heapUsed, external, collected: gc !== undefined };
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? '';
  if (!isPeerName(name)) throw new Error(`unknown peer "${name}"`);
  if (!process.send) throw new Error('serve.ts must be started with an IPC channel (child_process.fork)');

  // The parent can go away (or be interrupted) while the server boots: then nobody will ask it
  // to stop, and its ready line has nowhere to go. Exit as soon as the boot is over.
  let orphaned = false;
  const orphan = () => (orphaned = true);
  process.once('disconnect', orphan);
  process.once('SIGINT', orphan);
  process.once('SIGTERM', orphan);
  process.stdout.on('error', orphan);

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
    } else if (message.type === 'memory') {
      process.send?.(sampleMemory(message.requestId));
    } else if (message.type === 'stop') {
      stop(0);
    }
  });
  process.off('disconnect', orphan);
  process.off('SIGINT', orphan);
  process.off('SIGTERM', orphan);
  process.stdout.off('error', orphan);
  if (orphaned || !process.connected) {
    stop(0);
    return;
  }
  process.once('disconnect', () => stop(0));
  // Ctrl-C reaches the whole process group: shut down cleanly rather than die mid-write.
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  process.stdout.on('error', () => stop(0));

  const ready: ReadyLine = { port: peer.port, path: peer.path };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`serve.ts failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
