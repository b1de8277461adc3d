/**
 * Child-process entry: the receiving side of the `webhooks` workload, forked by
 * `webhook-receivers-process.ts`. Listens with N plain `node:http` servers on 127.0.0.1 (one per
 * endpoint), answers every POST with 204 once its body is read, and books it: which event it
 * carried (`seq`, read from the raw body as the fan-out client reads frames), how long after its
 * `sentAt` it arrived, whether that receiver had it already, and — in a spread step, where event
 * `seq` is meant for receiver `seq % receivers` only — whether it was meant for it, in the book of
 * `webhook-receipts.ts`, which keeps every step of the run so a copy that comes late still counts.
 * The same receivers serve every arm — Tributary, the naive BullMQ worker, the plain POST loop —
 * so what a request costs here is the same whoever sends it; this process's CPU is reported with
 * every step so the table can say when the receivers, not the sender, were the limit.
 *
 * Runs until the parent sends `close` or goes away (IPC disconnect), whichever comes first.
 */
import { createServer, type Server } from 'node:http';
import { closeListener, listenOnLoopback } from '../peers/http-listener.ts';
import type { ReceiverReply, ReceiverReport, ReceiverRequest, WarmUp } from './webhook-receiver-protocol.ts';
import { createReceiptBook } from './webhook-receipts.ts';

/** Idle keep-alive connections are kept longer than any sender here keeps them (undici: 4 s). */
const KEEP_ALIVE_MS = 10_000;

const servers: Server[] = [];
/** Resolve a pending `collect` / `warmed` when the step under way is complete / warmed up. */
let onComplete: (() => void) | undefined;
let onWarm: (() => void) | undefined;
const receipts = createReceiptBook({ onComplete: () => onComplete?.(), onWarm: () => onWarm?.() });

/** Resolves when the callback `arm` is handed is called, or after `timeoutMs`, whichever comes first. */
function signalOrTimeout(timeoutMs: number, arm: (signal: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    arm(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function warmed(timeoutMs: number): Promise<WarmUp> {
  if (!receipts.warm()) {
    await signalOrTimeout(timeoutMs, (signal) => (onWarm = signal));
    onWarm = undefined;
  }
  const warm = receipts.warm();
  if (!warm) {
    const { received } = receipts.progress();
    throw new Error(`${received} of the step's warm-up deliveries in after ${timeoutMs} ms`);
  }
  return warm;
}

const urls: string[] = [];

async function listen(count: number): Promise<string[]> {
  for (let receiver = servers.length; receiver < count; receiver += 1) {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        receipts.book(receiver, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
        response.writeHead(204).end();
      });
    });
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    servers.push(server);
    urls.push(`http://127.0.0.1:${await listenOnLoopback(server)}/hooks/${receiver}`);
  }
  return urls.slice(0, count);
}

async function collect(timeoutMs: number, sent: number | undefined): Promise<ReceiverReport> {
  if (sent !== undefined) receipts.limit(sent);
  if (!receipts.complete()) {
    await signalOrTimeout(timeoutMs, (signal) => (onComplete = signal));
    onComplete = undefined;
  }
  return receipts.report();
}

async function handle(request: ReceiverRequest): Promise<ReceiverReply> {
  const { requestId } = request;
  switch (request.type) {
    case 'listen':
      return { type: 'listening', requestId, urls: await listen(request.receivers) };
    case 'expect': {
      const receivers = Math.min(request.receivers, servers.length);
      // Spread: each event is meant for one receiver, so they must all be there to get it.
      if (request.spread === true && receivers < request.receivers) throw new Error(`a spread step over ${request.receivers} receivers with ${servers.length} listening`);
      receipts.expect({ firstSeq: request.firstSeq, count: request.count, receivers, spread: request.spread ?? false, warmup: request.warmup ?? 0, sender: request.sender ?? 'unnamed' });
      return { type: 'expecting', requestId };
    }
    case 'progress':
      return { type: 'progress', requestId, ...receipts.progress() };
    case 'warmed':
      return { type: 'warmed', requestId, warm: await warmed(request.timeoutMs) };
    case 'collect':
      return { type: 'collected', requestId, report: await collect(request.timeoutMs, request.sent) };
    case 'late':
      return { type: 'late', requestId, late: receipts.late() };
    case 'close':
      await close();
      return { type: 'closed', requestId };
  }
}

async function close(): Promise<void> {
  await Promise.all(servers.splice(0).map(closeListener));
}

process.on('message', (request: ReceiverRequest) => {
  handle(request).then(
    (reply) => {
      process.send?.(reply);
      if (reply.type === 'closed') process.disconnect();
    },
    (error: unknown) => process.send?.({ type: 'failed', requestId: request.requestId, message: error instanceof Error ? error.message : String(error) } satisfies ReceiverReply),
  );
});
// The parent went away (or closed us): nobody will read another report.
process.once('disconnect', () => {
  void close().finally(() => process.exit(0));
});
