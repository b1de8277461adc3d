/**
 * Workload "reconnect" (issue 13's benchmark target): N `@tributary/client` clients, each with
 * one `subscribeEvents(topic)` over a socket of its own, against Tributary in Redis mode.
 *
 * 1. Server restart: events flow at a steady rate; the clients' server is killed (SIGKILL) and
 *    started again on the same port while publishing goes on through a second Tributary instance
 *    on the same Redis (the path a multi-instance deployment has anyway), so the events of the
 *    outage are in the log when the clients come back. Reported: time until every client is
 *    resumed, the arrival spread of its reconnections (attempts per second), events lost (must
 *    be 0) and duplicates.
 * 2. Token refresh: every socket gets a new token in-band (`refreshToken()` → `refreshAuth`)
 *    while events flow: events lost (0), duplicates, refreshes/s and the server's CPU per refresh.
 * 3. The baseline of the arrival spread: the same restart with plain graphql-ws clients and
 *    their default retry (events of the gap are lost there: it resubscribes without a cursor).
 *
 * The clients live in one load-client process (`lib/reconnect-client.ts`), the servers in
 * their own (`peers/serve.ts`), the publisher in the runner.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { freePort } from '../../test/helpers/free-port.ts';
import { startRedis } from '../../test/helpers/redis.ts';
import { clockMillis } from '../lib/fanout-payload.ts';
import type { PeerProcess, PeerProcessOptions } from '../lib/peer-process.ts';
import { createPublisher, type Publisher } from '../lib/publisher.ts';
import { startReconnectClient, type ReconnectClient } from '../lib/reconnect-client-process.ts';
import type { ClientKind } from '../lib/reconnect-protocol.ts';
import { messageOf, print } from '../lib/report.ts';
import { formatMillis } from '../lib/stats.ts';
import { skip, type Workload, type WorkloadContext } from '../lib/workload.ts';
import { printRefresh, printRestart, summaryLine, type RefreshResult, type RestartResult } from './reconnect-report.ts';

interface Settings {
  readonly clients: number;
  readonly topics: number;
  /** Events per second, over all topics. */
  readonly rate: number;
  /** Events flowing before the kill, and after every client resumed, in ms. */
  readonly steadyMs: number;
  /** Longest wait for every client to resume after the restart, in ms. */
  readonly resumeTimeoutMs: number;
  /** Clients started at once. */
  readonly openParallel: number;
  /** Refreshes in flight at once. */
  readonly refreshParallel: number;
  /** Also restart under plain graphql-ws clients (the spread's baseline). */
  readonly baseline: boolean;
}

const FULL: Settings = { clients: 5000, topics: 10, rate: 20, steadyMs: 2000, resumeTimeoutMs: 60_000, openParallel: 200, refreshParallel: 100, baseline: true };
const QUICK: Settings = { clients: 500, topics: 10, rate: 20, steadyMs: 1000, resumeTimeoutMs: 30_000, openParallel: 100, refreshParallel: 100, baseline: false };

const TOPIC_PREFIX = 'bench.reconnect.';
const PUBLISH_QUERY = 'mutation Publish($topic: String!, $payload: JSON!) { publish(topic: $topic, payload: $payload) { id } }';
/** Bytes of the payload JSON, as `fanout`'s. */
const PAYLOAD_BYTES = 200;
/** Longest wait for events still on their way at the end of a phase, in ms. */
const COLLECT_TIMEOUT_MS = 20_000;
/** Probe rounds (one event per topic) before giving up on a client never subscribed. */
const PROBE_ROUNDS = 30;

/** Event `seq` goes to topic `seq mod topics`; its payload carries `seq` and the time it was sent. */
function publishBody(topics: number) {
  return (seq: number, sentAt: number): string => {
    const head = `{"seq":${seq},"sentAt":${sentAt.toFixed(3)},"pad":"`;
    const payload = `${head}${'x'.repeat(Math.max(0, PAYLOAD_BYTES - head.length - 2))}"}`;
    return `{"query":${JSON.stringify(PUBLISH_QUERY)},"variables":{"topic":"${TOPIC_PREFIX}${seq % topics}","payload":${payload}}}`;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Publishes at `rate` in one-second runs, one event in flight, until `stop()`; bounded by `maxSeconds`. */
function publishSteadily(publisher: Publisher, firstSeq: number, rate: number, maxSeconds = 300) {
  let stopped = false;
  let next = firstSeq;
  let failures = 0;
  const done = (async () => {
    for (let second = 0; second < maxSeconds && !stopped; second += 1) {
      const report = await publisher.run({ firstSeq: next, count: rate, rate, maxInFlight: 1 });
      next += report.sent;
      failures += report.failures;
    }
  })();
  return {
    /** Stops after the run in progress; the last sequence number published and how many failed. */
    async stop(): Promise<{ lastSeq: number; failures: number }> {
      stopped = true;
      await done;
      return { lastSeq: next - 1, failures };
    },
  };
}

/** What a phase shares: the servers, the publisher, the next sequence number. */
interface Rig {
  readonly context: WorkloadContext;
  readonly settings: Settings;
  readonly secret: string;
  readonly serverOptions: PeerProcessOptions;
  /** The clients' server (killed and restarted). */
  server: PeerProcess;
  readonly publisher: Publisher;
  nextSeq: number;
}

export const reconnect: Workload = {
  name: 'reconnect',
  description: 'N SDK clients with subscriptions: server restarted (Redis mode) → time to resume, reconnect spread, events lost; in-band token refresh',
  async run(context) {
    const settings = context.quick ? QUICK : FULL;
    print(
      `${settings.clients.toLocaleString('en-US')} clients (one load-client process), ${settings.topics} topics, ${settings.rate} events/s over all topics, ` +
        `~${PAYLOAD_BYTES}-byte payloads; HS256 tokens (JWT_SECRET on the server); Redis mode, the server SIGKILLed and restarted on its port`,
    );
    let redis;
    try {
      redis = await startRedis();
    } catch (error) {
      skip(context, 'reconnect', `no private redis-server (${messageOf(error)})`);
      return;
    }
    const redisServer = redis;
    context.defer(`redis-server :${redisServer.port}`, () => redisServer.dispose());

    const secret = randomBytes(32).toString('hex');
    const env = { REDIS_URL: redisServer.url, REDIS_KEY_PREFIX: `reconnect-${process.pid}:`, JWT_SECRET: secret };
    const serverOptions: PeerProcessOptions = { startTimeoutMs: 120_000, env: { ...env, PORT: String(await freePort()) } };
    const boots: string[] = [];
    const boot = async (label: string, options: PeerProcessOptions) => {
      const started = performance.now();
      const peer = await context.startPeer('tributary-redis', options);
      boots.push(`${label} ${formatMillis(performance.now() - started)}`);
      return peer;
    };
    const server = await boot('clients\' server', serverOptions);
    const publishing = await boot('publishing instance', { startTimeoutMs: 120_000, env });
    print(`servers ready (one at a time; boot time not measured): ${boots.join(', ')}`);

    const publisherToken = await new SignJWT({ app: 'default', env: 'default', tenant: 'bench', permissions: ['bench.publish'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('bench-publisher')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret));
    const publisher = createPublisher({ url: publishing.httpUrl, body: publishBody(settings.topics), headers: { authorization: `Bearer ${publisherToken}` } });
    context.defer('reconnect publisher', () => Promise.resolve(publisher.close()));
    const rig: Rig = { context, settings, secret, serverOptions, server, publisher, nextSeq: 0 };

    const restarts: RestartResult[] = [];
    let refresh: RefreshResult | undefined;
    const sdk = await openClients(rig, 'sdk');
    try {
      restarts.push(await restartServer(rig, sdk, 'sdk'));
      refresh = await refreshTokens(rig, sdk);
    } finally {
      await sdk.stop();
    }
    if (settings.baseline) {
      const plain = await openClients(rig, 'graphql-ws');
      try {
        restarts.push(await restartServer(rig, plain, 'graphql-ws'));
      } finally {
        await plain.stop();
      }
    }

    printRestart(restarts);
    if (refresh) printRefresh(refresh, settings.refreshParallel);
    print(summaryLine(restarts, refresh));
    const failures = checkFailures(restarts, refresh);
    if (failures.length > 0) throw new Error(`reconnect: ${failures.join('; ')}`);
  },
};

/** What fails the run: only ours — graphql-ws losing the events of the gap is what it does. */
function checkFailures(restarts: readonly RestartResult[], refresh: RefreshResult | undefined): string[] {
  const failures: string[] = [];
  for (const result of restarts.filter((restart) => restart.kind === 'sdk')) {
    const { lost, duplicates, outOfOrder } = result.collected.delivery;
    if (result.notResumed > 0) failures.push(`${result.notResumed} SDK clients never resumed after the restart`);
    if (lost > 0 || duplicates > 0 || outOfOrder > 0) failures.push(`restart: ${lost} events lost, ${duplicates} duplicates, ${outOfOrder} out of order`);
  }
  if (refresh) {
    const { lost, duplicates, outOfOrder } = refresh.collected.delivery;
    if (lost > 0 || duplicates > 0 || outOfOrder > 0) failures.push(`refresh: ${lost} events lost, ${duplicates} duplicates, ${outOfOrder} out of order`);
    if (refresh.report.failed > 0 || refresh.report.refreshed < refresh.clients) failures.push(`refresh: ${refresh.report.refreshed} of ${refresh.clients} refreshed, ${refresh.report.failed} failed`);
  }
  return failures;
}

/** Starts the load client with N clients and probes until every one of them receives events. */
async function openClients(rig: Rig, kind: ClientKind): Promise<ReconnectClient> {
  const { settings } = rig;
  const client = startReconnectClient();
  rig.context.defer(`reconnect load client (${kind})`, () => client.stop());
  const started = performance.now();
  try {
    await client.open({ kind, url: rig.server.url, clients: settings.clients, topics: settings.topics, topicPrefix: TOPIC_PREFIX, secret: rig.secret, parallel: settings.openParallel });
    // The protocol does not acknowledge `subscribe`: one event per topic until every client has had one.
    let missing = settings.clients;
    for (let round = 0; round < PROBE_ROUNDS && missing > 0; round += 1) {
      const first = rig.nextSeq;
      for (let topic = 0; topic < settings.topics; topic += 1) await rig.publisher.publishOne(rig.nextSeq++);
      missing = await client.awaitSeq(first, 1000);
    }
    if (missing > 0) throw new Error(`${missing} ${kind} clients received no probe event`);
  } catch (error) {
    await client.stop();
    throw error;
  }
  print(`${settings.clients.toLocaleString('en-US')} ${kind} clients connected and subscribed in ${formatMillis(performance.now() - started)}`);
  return client;
}

async function restartServer(rig: Rig, client: ReconnectClient, kind: ClientKind): Promise<RestartResult> {
  const firstSeq = rig.nextSeq;
  await client.expect(firstSeq);
  const publishing = publishSteadily(rig.publisher, firstSeq, rig.settings.rate);
  let stopped: { lastSeq: number; failures: number } | undefined;
  try {
    await sleep(rig.settings.steadyMs);
    await client.arm();
    const killedAt = clockMillis();
    process.kill(rig.server.pid, 'SIGKILL');
    await rig.server.stop();
    rig.server = await rig.context.startPeer('tributary-redis', rig.serverOptions);
    const restartedAt = clockMillis();
    const notResumed = await client.awaitResumed(rig.settings.resumeTimeoutMs);
    await sleep(rig.settings.steadyMs);
    stopped = await publishing.stop();
    rig.nextSeq = stopped.lastSeq + 1;
    const collected = await client.collect(stopped.lastSeq, COLLECT_TIMEOUT_MS);
    return { kind, clients: rig.settings.clients, killedAt, restartedAt, notResumed, events: stopped.lastSeq - firstSeq + 1, publishFailures: stopped.failures, collected };
  } finally {
    if (!stopped) rig.nextSeq = (await publishing.stop()).lastSeq + 1;
  }
}

async function refreshTokens(rig: Rig, client: ReconnectClient): Promise<RefreshResult> {
  const firstSeq = rig.nextSeq;
  await client.expect(firstSeq);
  const publishing = publishSteadily(rig.publisher, firstSeq, rig.settings.rate);
  let stopped: { lastSeq: number; failures: number } | undefined;
  try {
    await sleep(500);
    // What the event flow alone costs the server, to take off the refreshes' CPU.
    const baselineStart = { cpu: await rig.server.cpuMicros(), at: clockMillis() };
    await sleep(rig.settings.steadyMs);
    const baselineEnd = { cpu: await rig.server.cpuMicros(), at: clockMillis() };
    const report = await client.refresh(rig.settings.refreshParallel, 60_000);
    const cpuAfter = await rig.server.cpuMicros();
    await sleep(rig.settings.steadyMs / 2);
    stopped = await publishing.stop();
    rig.nextSeq = stopped.lastSeq + 1;
    const collected = await client.collect(stopped.lastSeq, COLLECT_TIMEOUT_MS);
    return {
      clients: rig.settings.clients,
      report,
      serverCpuMicros: cpuAfter - baselineEnd.cpu,
      baselineCpuPerSecond: ((baselineEnd.cpu - baselineStart.cpu) / (baselineEnd.at - baselineStart.at)) * 1000,
      events: stopped.lastSeq - firstSeq + 1,
      collected,
    };
  } finally {
    if (!stopped) rig.nextSeq = (await publishing.stop()).lastSeq + 1;
  }
}
