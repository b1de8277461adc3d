/**
 * Child-process entry: the receiving side of the `webhooks` workload, forked by
 * `webhook-receivers-process.ts`. Listens with N plain `node:http` servers on 127.0.0.1 (one per
 * endpoint), answers every POST with 204 once its body is read, and books it: which event it
 * carried (`seq`, read from the raw body as the fan-out client reads frames), how long after its
 * `sentAt` it arrived, whether that receiver had it already, and — in a spread step, where event
 * `seq` is meant for receiver `seq % receivers` only — whether it was meant for it. The same
 * receivers serve every arm — Tributary, the naive BullMQ worker, the plain POST loop — so what a
 * request costs here is the same whoever sends it; this process's CPU is reported with every step
 * so the table can say when the receivers, not the sender, were the limit.
 *
 * Runs until the parent sends `close` or goes away (IPC disconnect), whichever comes first.
 */
import { createServer, type Server } from 'node:http';
import { createHistogram } from 'node:perf_hooks';
import { closeListener, listenOnLoopback } from '../peers/http-listener.ts';
import { clockMillis, readDelivery, type Delivery } from './fanout-payload.ts';
import { recordMillis, summarize } from './stats.ts';
import type { ReceiverReply, ReceiverReport, ReceiverRequest, WarmUp } from './webhook-receiver-protocol.ts';

/** Idle keep-alive connections are kept longer than any sender here keeps them (undici: 4 s). */
const KEEP_ALIVE_MS = 10_000;

interface Step {
  readonly firstSeq: number;
  /** Events expected per receiver: what `expect` said, or fewer when `collect` says fewer were sent. */
  count: number;
  readonly receivers: number;
  /** Event `seq` is for receiver `seq % receivers` only; otherwise every receiver gets every event. */
  readonly spread: boolean;
  /** Per receiver, per event of the step: 1 once received. */
  readonly seen: Uint8Array[];
  readonly latency: ReturnType<typeof createHistogram>;
  received: number;
  duplicates: number;
  misrouted: number;
  stray: number;
  firstAt: number;
  lastAt: number;
  bodyBytes: number;
  requests: number;
  readonly cpuStart: NodeJS.CpuUsage;
  /** Resolves a pending `collect` once the step is complete. */
  onComplete: (() => void) | undefined;
  /** Deliveries that warm the sender up; `warm` is set when the last of them is booked (at once without any). */
  readonly warmup: number;
  warm: WarmUp | undefined;
  /** Resolves a pending `warmed` then. */
  onWarm: (() => void) | undefined;
}

const servers: Server[] = [];
let step: Step | undefined;
const scratch: Delivery = { seq: 0, sentAt: 0 };

/** The receiver event `seq` is meant for in a spread step. */
const receiverOf = (current: Step, seq: number): number => seq % current.receivers;

/** Deliveries the step is complete with: one per event when spread, one per event and receiver otherwise. */
const expectedOf = (current: Step): number => (current.spread ? current.count : current.count * current.receivers);

function book(receiver: number, body: Buffer): void {
  const at = clockMillis();
  const current = step;
  if (!current) return;
  current.requests += 1;
  current.bodyBytes += body.length;
  if (receiver >= current.receivers || !readDelivery(body, scratch)) {
    current.stray += 1;
    return;
  }
  const index = scratch.seq - current.firstSeq;
  const seen = current.seen[receiver];
  if (!seen || index < 0 || index >= current.count) {
    current.stray += 1;
    return;
  }
  if (current.spread && receiverOf(current, scratch.seq) !== receiver) {
    // An endpoint got an event whose topic it does not select: not this receiver's delivery.
    current.misrouted += 1;
    return;
  }
  if (seen[index] === 1) {
    current.duplicates += 1;
    return;
  }
  seen[index] = 1;
  current.received += 1;
  if (Number.isNaN(current.firstAt)) current.firstAt = at;
  current.lastAt = at;
  recordMillis(current.latency, at - scratch.sentAt);
  if (current.received === current.warmup) warmedUp(current, at);
  if (current.received === expectedOf(current)) current.onComplete?.();
}

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

function warmedUp(current: Step, at: number): void {
  const cpu = process.cpuUsage(current.cpuStart);
  current.warm = { at, cpuMicros: cpu.user + cpu.system };
  current.onWarm?.();
}

async function warmed(timeoutMs: number): Promise<WarmUp> {
  const current = step;
  if (!current) throw new Error('warmed before expect');
  if (!current.warm) {
    await signalOrTimeout(timeoutMs, (signal) => (current.onWarm = signal));
    current.onWarm = undefined;
  }
  if (!current.warm) throw new Error(`${current.received} of the step's ${current.warmup} warm-up deliveries in after ${timeoutMs} ms`);
  return current.warm;
}

const urls: string[] = [];

async function listen(count: number): Promise<string[]> {
  for (let receiver = servers.length; receiver < count; receiver += 1) {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        book(receiver, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
        response.writeHead(204).end();
      });
    });
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    servers.push(server);
    urls.push(`http://127.0.0.1:${await listenOnLoopback(server)}/hooks/${receiver}`);
  }
  return urls.slice(0, count);
}

function report(current: Step): ReceiverReport {
  let missing = 0;
  if (current.spread) {
    for (let index = 0; index < current.count; index += 1) if (current.seen[receiverOf(current, current.firstSeq + index)]?.[index] === 0) missing += 1;
  } else {
    for (const seen of current.seen) for (let index = 0; index < current.count; index += 1) if (seen[index] === 0) missing += 1;
  }
  const cpu = process.cpuUsage(current.cpuStart);
  return {
    receivers: current.receivers,
    received: current.received,
    missing,
    duplicates: current.duplicates,
    misrouted: current.misrouted,
    stray: current.stray,
    latency: summarize(current.latency),
    firstAt: current.firstAt,
    lastAt: current.lastAt,
    meanBodyBytes: current.requests === 0 ? Number.NaN : current.bodyBytes / current.requests,
    cpuMicros: cpu.user + cpu.system,
    complete: missing === 0,
  };
}

async function collect(timeoutMs: number, sent: number | undefined): Promise<ReceiverReport> {
  const current = step;
  if (!current) throw new Error('collect before expect');
  // Events are sent in seq order: those never sent are the last ones of the range.
  if (sent !== undefined && sent < current.count) current.count = sent;
  if (current.received < expectedOf(current)) {
    await signalOrTimeout(timeoutMs, (signal) => (current.onComplete = signal));
    current.onComplete = undefined;
  }
  return report(current);
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
      step = {
        firstSeq: request.firstSeq,
        count: request.count,
        receivers,
        spread: request.spread ?? false,
        seen: Array.from({ length: receivers }, () => new Uint8Array(request.count)),
        latency: createHistogram(),
        received: 0,
        duplicates: 0,
        misrouted: 0,
        stray: 0,
        firstAt: Number.NaN,
        lastAt: Number.NaN,
        bodyBytes: 0,
        requests: 0,
        cpuStart: process.cpuUsage(),
        onComplete: undefined,
        warmup: request.warmup ?? 0,
        warm: undefined,
        onWarm: undefined,
      };
      if (step.warmup === 0) warmedUp(step, clockMillis());
      return { type: 'expecting', requestId };
    }
    case 'progress':
      return { type: 'progress', requestId, received: step?.received ?? 0, expected: step ? expectedOf(step) : 0 };
    case 'warmed':
      return { type: 'warmed', requestId, warm: await warmed(request.timeoutMs) };
    case 'collect':
      return { type: 'collected', requestId, report: await collect(request.timeoutMs, request.sent) };
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
