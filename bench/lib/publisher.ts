/**
 * The fan-out workload's publisher: the same `publish` mutation body POSTed over HTTP to every
 * peer, paced by a timer at a target rate, with a bounded number of requests in flight. It runs
 * in the parent process, apart from the server and the subscribers. Every event carries its
 * sequence number and the time it was SCHEDULED to be sent (`fanout-payload.ts`), not the time the
 * publisher got to send it: a publisher held back by a slow server (every request slot busy, one in
 * flight waiting for its answer) would otherwise hide the wait from every latency it measures
 * (coordinated omission). The wait shows up as latency, in `lagMs`, and as a step that did not keep up.
 */
import { Agent, request } from 'node:http';
import { clockMillis, publishBody } from './fanout-payload.ts';
import { createHistogram } from 'node:perf_hooks';
import { recordMillis, summarize, type Summary } from './stats.ts';

/** Idle time after which a kept-alive connection is closed by us, in ms. */
const IDLE_CONNECTION_MS = 1000;
/** Connections kept alive: the most requests a run may have in flight. */
const MAX_CONNECTIONS = 32;
/** Time one request may take before it counts as failed, in ms. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface PublisherOptions {
  /** `http://127.0.0.1:port/graphql` */
  readonly url: string;
  /**
   * The HTTP body of the mutation for event `seq`, due at `sentAt` (`clockMillis()` of its place in
   * the schedule); its result must carry `"seq":` and `"sentAt":` to the subscribers. @default publishBody
   */
  readonly body?: (seq: number, sentAt: number) => string;
  /** Extra request headers (`authorization` for a server with `JWT_SECRET`). @default {} */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface PublishRun {
  /** Sequence number of the first event; the run publishes `firstSeq … firstSeq + count − 1`. */
  readonly firstSeq: number;
  readonly count: number;
  /** Events per second. */
  readonly rate: number;
  /**
   * Requests in flight at once; the schedule waits while they are all busy. With 1, each event
   * is answered before the next is sent, so the order of the events is defined; with more,
   * concurrent publishes have no order until the server picks one.
   */
  readonly maxInFlight: number;
  /**
   * `clockMillis()` after which no further event is sent, even with events left: a step against
   * a server slower than the rate then ends on time instead of when the last event got through.
   * `sent` in the report says how many were. @default none (every event is sent)
   */
  readonly until?: number;
}

export interface PublishReport {
  /** Events sent: `count`, unless `until` cut the run short (then `firstSeq … firstSeq + sent − 1`). */
  readonly sent: number;
  /** `clockMillis()` when the first event was sent: the schedule's start (event k is due `k ÷ rate` after it). */
  readonly startedAt: number;
  /** `clockMillis()` when the last event was sent. */
  readonly lastSentAt: number;
  /** How far the last event was sent behind its schedule, in ms. */
  readonly lagMs: number;
  /** The most any event was sent behind its schedule, in ms. */
  readonly maxLagMs: number;
  /** Requests answered with something else than 200 and a result without `errors`. */
  readonly failures: number;
  /** The first of those, for the report. */
  readonly firstFailure: string | undefined;
  /** Request sent → answer received, in µs (a server that fans out before answering shows it here). */
  readonly answered: Summary | undefined;
}

export interface Publisher {
  /**
   * Opens `connections` kept-alive connections now (concurrent `GET`s of the endpoint, whatever
   * they answer), so a run does not start by connecting to a server it is about to saturate.
   */
  connect(connections: number): Promise<void>;
  /** Publishes one event now and resolves once it is answered (rejects if it failed). */
  publishOne(seq: number): Promise<void>;
  /** Publishes `count` events at `rate` per second; resolves once every one is answered. */
  run(run: PublishRun): Promise<PublishReport>;
  /** Closes the kept-alive connections. */
  close(): void;
}

export function createPublisher(options: PublisherOptions): Publisher {
  const url = new URL(options.url);
  const timeoutMs = REQUEST_TIMEOUT_MS;
  const bodyOf = options.body ?? publishBody;
  // Idle connections are dropped after 1 s, well before a Node server's 5 s keep-alive timeout:
  // reusing one the server is closing at that moment fails the request (ECONNRESET).
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_CONNECTIONS, timeout: IDLE_CONNECTION_MS });

  /** Sends event `seq`, due at `dueAt`; resolves with undefined on success, with what went wrong otherwise. */
  const send = (seq: number, dueAt: number, attempt = 1): Promise<string | undefined> =>
    new Promise((resolve) => {
      const body = bodyOf(seq, dueAt);
      const outgoing = request(
        url,
        { method: 'POST', agent, timeout: timeoutMs, headers: { ...options.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (response.statusCode !== 200 || text.includes('"errors"')) resolve(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
            else resolve(undefined);
          });
          response.on('error', (error) => resolve(error.message));
        },
      );
      outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        // A kept-alive connection the server closed just as it was reused: the request never
        // reached it, so sending it again on a new connection is safe (Node's documented retry).
        if (outgoing.reusedSocket && error.code === 'ECONNRESET' && attempt === 1) resolve(send(seq, dueAt, 2));
        else resolve(error.message);
      });
      outgoing.end(body);
    });

  const get = (): Promise<void> =>
    new Promise((resolve) => {
      const outgoing = request(url, { method: 'GET', agent, timeout: timeoutMs }, (response) => {
        response.resume();
        response.on('end', resolve);
        response.on('error', () => resolve());
      });
      outgoing.on('timeout', () => outgoing.destroy());
      outgoing.on('error', () => resolve());
      outgoing.end();
    });

  return {
    async connect(connections) {
      await Promise.all(Array.from({ length: connections }, get));
    },
    async publishOne(seq) {
      const failure = await send(seq, clockMillis());
      if (failure !== undefined) throw new Error(`publish failed: ${failure}`);
    },
    run: (run) => runPaced(run, send),
    close() {
      agent.destroy();
    },
  };
}

/**
 * Sends `count` events at `rate` per second through `send` (which resolves with undefined on
 * success, with what went wrong otherwise) with at most `maxInFlight` unanswered; resolves once
 * every one is answered. A timer paces it; when it falls behind it catches up at once, as far as
 * `maxInFlight` allows. `send` is handed each event's due time — `startedAt + k ÷ rate` for the
 * k-th, however late it actually goes out — which is what the event must carry as `sentAt`: its
 * latency then counts from when it should have been sent, the time spent waiting for a slot
 * included (no coordinated omission). Shared by every writer that must keep the publisher's
 * schedule (the HTTP publisher here, the row and commit writers of `cdc` and `outbox`).
 */
export function runPaced(
  { firstSeq, count, rate, maxInFlight, until }: PublishRun,
  send: (seq: number, dueAt: number) => Promise<string | undefined>,
): Promise<PublishReport> {
  return new Promise<PublishReport>((resolve) => {
    const intervalMs = 1000 / rate;
    const startedAt = clockMillis();
    let sent = 0;
    let answered = 0;
    let inFlight = 0;
    let failures = 0;
    let firstFailure: string | undefined;
    let lastSentAt = startedAt;
    let maxLagMs = 0;
    const answers = createHistogram();
    /** Every request slot is busy with events due: the next answer resumes the schedule. */
    let blocked = false;
    /** Events to send: `count`, or fewer once `until` has passed. */
    let limit = count;

    const finish = () =>
      resolve({
        sent,
        startedAt,
        lastSentAt,
        lagMs: lastSentAt - (startedAt + (sent - 1) * intervalMs),
        maxLagMs,
        failures,
        firstFailure,
        answered: summarize(answers),
      });

    // Sends what is due by now (catching up after a late timer), then sleeps until the next one.
    const tick = () => {
      if (until !== undefined && clockMillis() >= until && limit > sent) {
        limit = sent;
        if (answered === limit) {
          finish();
          return;
        }
      }
      const due = Math.min(limit, Math.floor((clockMillis() - startedAt) / intervalMs) + 1);
      while (sent < due && inFlight < maxInFlight) {
        const seq = firstSeq + sent;
        const dueAt = startedAt + sent * intervalMs;
        sent += 1;
        inFlight += 1;
        lastSentAt = clockMillis();
        maxLagMs = Math.max(maxLagMs, lastSentAt - dueAt);
        const sentAt = lastSentAt;
        void send(seq, dueAt).then((failure) => {
          recordMillis(answers, clockMillis() - sentAt);
          inFlight -= 1;
          answered += 1;
          if (failure !== undefined) {
            failures += 1;
            firstFailure ??= failure;
          }
          if (answered === limit) finish();
          else if (blocked) {
            blocked = false;
            tick();
          }
        });
      }
      if (sent === limit) return;
      if (sent < due) blocked = true;
      else setTimeout(tick, Math.max(0, sent * intervalMs - (clockMillis() - startedAt)));
    };
    if (count === 0) finish();
    else tick();
  });
}
