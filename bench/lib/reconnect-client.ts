/**
 * Child-process entry: the client side of the `reconnect` workload, forked by
 * `reconnect-client-process.ts`. Holds N clients in one process, each with its own socket and one
 * `events(topic)` subscription, and books every event in a `SequenceLedger`:
 *
 * - `sdk`: `@tributary/client`'s `createClient` + `subscribeEvents` — full-jitter reconnection,
 *   resume from the last cursor, in-band token refresh — each client with its own HS256 token;
 * - `graphql-ws`: a plain graphql-ws `createClient` with its default backoff (5 attempts,
 *   2ⁿ s + 0.3–3 s) but `shouldRetry: () => true` (see below), subscribing without `after`, as a
 *   graphql-ws user would (the baseline of the arrival spread; it resubscribes with its original
 *   variables, so events of the gap are lost).
 *
 * Every WebSocket is constructed through a subclass that stamps the time, so the parent gets
 * the connection attempts of an outage. Runs until the parent sends `close` or goes away.
 */
import { createClient as createGraphQLWsClient, type Client as GraphQLWsClient } from 'graphql-ws';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { createClient, type TributaryClient } from '@tributary/client';
import { clockMillis } from './fanout-payload.ts';
import type { LoadReply, LoadRequest, OpenRequest, OutageRecord, RefreshReport } from './reconnect-protocol.ts';
import { createSequenceLedger, type SequenceLedger } from './sequence-ledger.ts';

/** Time a client has to connect for the first time, in ms. */
const FIRST_CONNECT_TIMEOUT_MS = 30_000;
/** How often waits re-check their condition, in ms. */
const POLL_MS = 20;

const EVENTS_QUERY = 'subscription Events($topic: String!) { events(topic: $topic) { id payload cursor } }';

/** Recording of the current outage (`arm`), undefined when none. */
let outage:
  | { attempts: number[]; outcomes: Map<string, number>; droppedAt: Float64Array; connectedAt: Float64Array; resumedAt: Float64Array; gaveUp: Uint8Array }
  | undefined;

/**
 * Constructs ws's WebSocket and stamps each attempt while an outage is being recorded; its
 * 'error' listener records how an attempt failed. (The SDK keeps an error listener on every
 * socket itself since this workload found that a socket terminated while CONNECTING made ws emit a
 * listener-less 'error' that killed the process: `packages/client/src/guarded-websocket.ts`.)
 */
class CountingWebSocket extends WebSocket {
  constructor(address: string | URL, protocols?: string | string[]) {
    super(address, protocols, { perMessageDeflate: false });
    const recording = outage;
    let failure: string | undefined;
    this.on('error', (error: NodeJS.ErrnoException) => (failure ??= error.code ?? error.message));
    if (!recording) return;
    recording.attempts.push(clockMillis());
    let opened = false;
    this.once('open', () => (opened = true));
    this.once('unexpected-response', (_request, response) => (failure ??= `HTTP ${response.statusCode}`));
    // How each attempt ended, for the report: refused, timed out before the handshake, closed by the server…
    this.once('close', (code: number) => {
      const outcome = opened ? `closed after open (${code})` : `failed before open (${failure ?? code})`;
      recording.outcomes.set(outcome, (recording.outcomes.get(outcome) ?? 0) + 1);
    });
  }
}

interface Held {
  readonly kind: OpenRequest['kind'];
  readonly sdk: TributaryClient[];
  readonly plain: GraphQLWsClient[];
  readonly tokens: string[];
  readonly secret: Uint8Array;
  /** Per client: has it received any event at or after `probeSeq`. */
  readonly latestSeq: Float64Array;
  readonly topics: number;
  /** The first errors reported by the clients (`onError`, subscription errors), and how many there were. */
  readonly errors: string[];
  errorCount: number;
}

let held: Held | undefined;
let ledger: SequenceLedger | undefined;

function sign(secret: Uint8Array, client: number): Promise<string> {
  return new SignJWT({ app: 'default', env: 'default', tenant: 'bench', permissions: ['bench.read'], jti: `${client}-${clockMillis()}` })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(`bench-client-${client}`)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(secret);
}

function delivered(client: number, payload: unknown): void {
  const seq = (payload as { seq?: unknown } | null)?.seq;
  if (typeof seq !== 'number' || !held) return;
  held.latestSeq[client] = Math.max(held.latestSeq[client] ?? -1, seq);
  ledger?.book(client, seq);
  // Resumed: the first event on the socket that replaced the one lost (not one still in flight on the old).
  if (outage && !Number.isNaN(outage.connectedAt[client] ?? Number.NaN) && Number.isNaN(outage.resumedAt[client] ?? 0)) outage.resumedAt[client] = clockMillis();
}

/** The client's socket went away. */
function dropped(client: number): void {
  if (outage && Number.isNaN(outage.droppedAt[client] ?? 0)) outage.droppedAt[client] = clockMillis();
}

/** A socket of the client was acknowledged. */
function connected(client: number): void {
  if (outage && !Number.isNaN(outage.droppedAt[client] ?? Number.NaN) && Number.isNaN(outage.connectedAt[client] ?? 0)) outage.connectedAt[client] = clockMillis();
}

/** The client stopped for good (graphql-ws out of retries). */
function gaveUp(client: number): void {
  if (outage) outage.gaveUp[client] = 1;
}

/** Resolves once `done()` holds, or after `timeoutMs` (then with false). */
async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return true;
}

/** Starts one client; resolves once its first socket is acknowledged. */
async function openClient(request: OpenRequest, state: Held, client: number): Promise<void> {
  const topic = `${request.topicPrefix}${client % request.topics}`;
  const report = (error: unknown) => {
    state.errorCount += 1;
    if (state.errors.length < 100) state.errors.push(error instanceof Error ? error.message : String(error));
  };
  let isConnected = false;
  if (request.kind === 'sdk') {
    const sdk = createClient({ url: request.url, getToken: () => state.tokens[client], webSocketImpl: CountingWebSocket, onError: report });
    sdk.onStateChange((next) => {
      if (next === 'reconnecting') dropped(client);
      if (next !== 'connected') return;
      isConnected = true;
      connected(client);
    });
    sdk.subscribeEvents(topic, { onEvent: (event) => delivered(client, event.payload), onError: report, onResync: () => report(new Error('RESYNC_REQUIRED')) });
    state.sdk.push(sdk);
  } else {
    const plain = createGraphQLWsClient({
      url: request.url,
      webSocketImpl: CountingWebSocket,
      connectionParams: () => ({ authorization: `Bearer ${state.tokens[client]}` }),
      // The default (`isLikeCloseEvent`) gives up at the first refused connection — an error
      // event, not a close event — so a server down for longer than one retry loses every
      // client (graphql-ws PR #126, issues #354, #356). The usual fix; the default backoff stays.
      shouldRetry: () => true,
      on: {
        connected: () => {
          isConnected = true;
          connected(client);
        },
        closed: () => dropped(client),
      },
    });
    plain.subscribe<{ events: { payload: unknown } }>(
      { query: EVENTS_QUERY, variables: { topic } },
      {
        next: (result) => delivered(client, result.data?.events.payload),
        error: (error) => {
          report(error instanceof Error ? error : new Error(`gave up: ${JSON.stringify(error)}`));
          gaveUp(client);
        },
        complete: () => gaveUp(client),
      },
    );
    state.plain.push(plain);
  }
  if (!(await waitUntil(() => isConnected, FIRST_CONNECT_TIMEOUT_MS))) throw new Error(`client ${client}: not connected within ${FIRST_CONNECT_TIMEOUT_MS} ms`);
}

async function open(request: OpenRequest): Promise<number> {
  if (held) throw new Error('already open');
  const secret = new TextEncoder().encode(request.secret);
  const tokens = await Promise.all(Array.from({ length: request.clients }, (_unused, client) => sign(secret, client)));
  const state: Held = { kind: request.kind, sdk: [], plain: [], tokens, secret, latestSeq: new Float64Array(request.clients).fill(-1), topics: request.topics, errors: [], errorCount: 0 };
  held = state;
  for (let first = 0; first < request.clients; first += request.parallel) {
    const batch = Array.from({ length: Math.min(request.parallel, request.clients - first) }, (_unused, offset) => openClient(request, state, first + offset));
    await Promise.all(batch);
  }
  return request.clients;
}

async function refresh(parallel: number, timeoutMs: number): Promise<RefreshReport> {
  const state = held;
  if (!state || state.kind !== 'sdk') throw new Error('refresh needs open SDK clients');
  const errorsBefore = state.errorCount;
  const firstBefore = state.errors.length;
  const cpuStart = process.cpuUsage();
  const startedAt = clockMillis();
  const deadline = performance.now() + timeoutMs;
  let refreshed = 0;
  let nextClient = 0;
  const worker = async () => {
    while (nextClient < state.sdk.length && performance.now() < deadline) {
      const client = nextClient++;
      state.tokens[client] = await sign(state.secret, client);
      await state.sdk[client]?.refreshToken();
      refreshed += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, state.sdk.length) }, worker));
  const cpu = process.cpuUsage(cpuStart);
  const failed = state.errorCount - errorsBefore;
  return { refreshed: refreshed - failed, failed, firstFailure: state.errors[firstBefore], startedAt, finishedAt: clockMillis(), clientCpuMicros: cpu.user + cpu.system };
}

function outageRecord(): OutageRecord {
  return {
    attempts: outage?.attempts ?? [],
    outcomes: Object.fromEntries(outage?.outcomes ?? []),
    connectedAt: [...(outage?.connectedAt ?? [])],
    resumedAt: [...(outage?.resumedAt ?? [])],
    gaveUp: outage?.gaveUp.reduce((sum, flag) => sum + flag, 0) ?? 0,
  };
}

async function handle(request: LoadRequest): Promise<LoadReply> {
  const { requestId } = request;
  switch (request.type) {
    case 'open':
      return { type: 'opened', requestId, clients: await open(request) };
    case 'expect': {
      const state = held;
      if (!state) throw new Error('expect before open');
      ledger = createSequenceLedger(state.latestSeq.length, state.topics, request.firstSeq);
      return { type: 'done', requestId, missing: 0 };
    }
    case 'await-seq': {
      const seen = held?.latestSeq ?? new Float64Array();
      await waitUntil(() => seen.every((seq) => seq >= request.seq), request.timeoutMs);
      return { type: 'done', requestId, missing: seen.filter((seq) => seq < request.seq).length };
    }
    case 'arm': {
      const clients = held?.latestSeq.length ?? 0;
      const times = () => new Float64Array(clients).fill(Number.NaN);
      outage = { attempts: [], outcomes: new Map(), droppedAt: times(), connectedAt: times(), resumedAt: times(), gaveUp: new Uint8Array(clients) };
      return { type: 'done', requestId, missing: 0 };
    }
    case 'await-resumed': {
      const resumed = outage?.resumedAt ?? new Float64Array();
      const stopped = outage?.gaveUp ?? new Uint8Array();
      await waitUntil(() => resumed.every((at, client) => !Number.isNaN(at) || stopped[client] === 1), request.timeoutMs);
      return { type: 'done', requestId, missing: resumed.filter((at) => Number.isNaN(at)).length };
    }
    case 'refresh':
      return { type: 'refreshed', requestId, report: await refresh(request.parallel, request.timeoutMs) };
    case 'collect': {
      const current = ledger;
      if (!current) throw new Error('collect before expect');
      await waitUntil(() => current.complete(request.lastSeq), request.timeoutMs);
      const reply: LoadReply = { type: 'collected', requestId, delivery: current.report(request.lastSeq),
        outage: outageRecord(),
        clientErrors: held?.errorCount ?? 0,
        firstClientError: held?.errors[0],
      };
      outage = undefined;
      return reply;
    }
    case 'close':
      close();
      return { type: 'closed', requestId };
  }
}

function close(): void {
  for (const client of held?.sdk ?? []) client.close();
  for (const client of held?.plain ?? []) void client.dispose();
  held = undefined;
  ledger = undefined;
}

process.on('message', (request: LoadRequest) => {
  handle(request).then(
    (reply) => {
      process.send?.(reply);
      if (reply.type === 'closed') process.disconnect();
    },
    (error: unknown) => process.send?.({ type: 'failed', requestId: request.requestId, message: error instanceof Error ? error.message : String(error) } satisfies LoadReply),
  );
});
// The parent went away (or closed us): nobody will read another report.
process.once('disconnect', () => {
  close();
  setTimeout(() => process.exit(0), 2000).unref();
});
