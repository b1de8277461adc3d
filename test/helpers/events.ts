/**
 * Helpers for the `events` integration suites: servers in either pipeline mode, `publish` over
 * HTTP, `events` subscriptions over a raw graphql-transport-ws socket, and reading what arrived.
 * Nothing here waits on time: every wait is on a message, a response or server state.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { expect, onTestFinished } from 'vitest';
import { testRedisUrl, uniquePrefix } from './services.ts';
import { postGraphQL, startTestServer, type GraphQLResponseBody, type TestServer, type TestServerOptions } from './tributary.ts';
import { waitFor } from './wait-for.ts';
import type { RawSocket, ReceivedMessage } from './ws-client.ts';

/** `memory`: in-process ring and bus; `redis`: Redis Streams and pub/sub. */
export type PipelineMode = 'memory' | 'redis';

export const MODES: readonly PipelineMode[] = ['memory', 'redis'];

/** The pipeline variables for `mode`: the shared Redis with a key prefix of this test's own. */
export function modeEnv(mode: PipelineMode): Record<string, string> {
  return mode === 'redis' ? { REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix() } : {};
}

/** A server in `mode`; `env` overrides the mode's variables (e.g. a private REDIS_URL). */
export function startModeServer(mode: PipelineMode, env: Record<string, string> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer({ ...modeEnv(mode), ...env }, options);
}

/** An `Event` as the suites select it. */
export interface DeliveredEvent {
  readonly id: string;
  readonly topic: string;
  readonly source: string;
  readonly type: string;
  readonly payload: Record<string, unknown>;
  readonly metadata: { readonly timestamp: string };
  readonly cursor: string;
}

export const EVENT_FIELDS = 'id topic source type payload metadata { timestamp } cursor';

export interface EventsSubscription {
  readonly topic: string;
  readonly where?: unknown;
  readonly after?: string;
  readonly returnMode?: 'FULL' | 'DATA' | 'DIFF' | 'MINIMAL';
}

const EVENTS_SUBSCRIPTION = `subscription Events($topic: String!, $where: EventWhere, $after: String, $returnMode: ReturnMode) {
  events(topic: $topic, where: $where, after: $after, returnMode: $returnMode) { ${EVENT_FIELDS} }
}`;

/** Sends `subscribe` for `events`; absent options are left out of the variables. */
export function subscribeEvents(client: RawSocket, id: string, subscription: EventsSubscription): void {
  client.send({ id, type: 'subscribe', payload: { query: EVENTS_SUBSCRIPTION, variables: subscription } });
}

/** The event of a `next` message, or an error naming what arrived instead. */
export function eventOf(message: ReceivedMessage): DeliveredEvent {
  const payload = message.payload as { data?: { events?: DeliveredEvent } } | undefined;
  const event = payload?.data?.events;
  if (message.type !== 'next' || !event) throw new Error(`expected an event, got ${JSON.stringify(message)}`);
  return event;
}

/** The next `count` messages, each of which must be an event of subscription `id`. */
export async function takeEvents(client: RawSocket, id: string, count: number): Promise<DeliveredEvent[]> {
  const events: DeliveredEvent[] = [];
  while (events.length < count) {
    const message = await client.nextMessage();
    if (message.id !== id) throw new Error(`expected an event of ${id}, got ${JSON.stringify(message)}`);
    events.push(eventOf(message));
  }
  return events;
}

/** Takes messages, keeping them all, up to and including the first that matches. */
export async function takeUntil(client: RawSocket, match: (message: ReceivedMessage) => boolean): Promise<ReceivedMessage[]> {
  const taken: ReceivedMessage[] = [];
  for (;;) {
    const message = await client.nextMessage();
    taken.push(message);
    if (match(message)) return taken;
  }
}

/**
 * Proves a socket received nothing more: the server answers `ping` in order with everything it
 * wrote before, so an empty list here means no message was on its way when the ping was sent.
 * Returns the messages that arrived before the pong.
 */
export async function messagesBeforePong(client: RawSocket): Promise<ReceivedMessage[]> {
  client.send({ type: 'ping' });
  const taken = await takeUntil(client, (message) => message.type === 'pong');
  return taken.slice(0, -1);
}

/** `payload.seq` of each event, for order checks. */
export function seqsOf(events: readonly DeliveredEvent[]): unknown[] {
  return events.map((event) => event.payload['seq']);
}

/** `from, from + 1, …, to`. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

export function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

export interface PublishInput {
  readonly topic: string;
  readonly payload: unknown;
  readonly type?: string;
}

/** Runs `publish` and returns the raw response (for error checks). */
export function publishRaw(server: TestServer, input: PublishInput, token?: string): Promise<{ status: number; body: GraphQLResponseBody }> {
  return postGraphQL(
    server.graphqlUrl,
    {
      query: `mutation Publish($topic: String!, $type: String, $payload: JSON!) { publish(topic: $topic, type: $type, payload: $payload) { ${EVENT_FIELDS} } }`,
      variables: { ...input },
    },
    bearer(token),
  );
}

/** Publishes one event and returns it as the mutation answered; fails the test on any error. */
export async function publishEvent(server: TestServer, input: PublishInput, token?: string): Promise<DeliveredEvent> {
  const { body } = await publishRaw(server, input, token);
  const event = body.data?.['publish'] as DeliveredEvent | undefined;
  if (body.errors !== undefined || !event) throw new Error(`publish failed: ${JSON.stringify(body)}`);
  return event;
}

/** Mutation fields run one after another, so one request of aliased `publish` fields keeps their order. */
const PUBLISHES_PER_REQUEST = 20;

/** Publishes the payloads on `topic` in order, up to 20 per request; returns the events in order. */
export async function publishMany(server: TestServer, topic: string, payloads: readonly unknown[], token?: string): Promise<DeliveredEvent[]> {
  const events: DeliveredEvent[] = [];
  for (let start = 0; start < payloads.length; start += PUBLISHES_PER_REQUEST) {
    const batch = payloads.slice(start, start + PUBLISHES_PER_REQUEST);
    const variables: Record<string, unknown> = { topic };
    const fields = batch.map((payload, i) => {
      variables[`p${i}`] = payload;
      return `e${i}: publish(topic: $topic, payload: $p${i}) { ${EVENT_FIELDS} }`;
    });
    const declarations = batch.map((_, i) => `$p${i}: JSON!`).join(', ');
    const { body } = await postGraphQL(
      server.graphqlUrl,
      { query: `mutation PublishMany($topic: String!, ${declarations}) { ${fields.join(' ')} }`, variables },
      bearer(token),
    );
    if (body.errors !== undefined || !body.data) throw new Error(`publish failed: ${JSON.stringify(body)}`);
    const data = body.data;
    events.push(...batch.map((_, i) => data[`e${i}`] as DeliveredEvent));
  }
  return events;
}

/** `{ seq }` payloads for `from…to`. */
export function seqPayloads(from: number, to: number): { seq: number }[] {
  return range(from, to).map((seq) => ({ seq }));
}

/** Asserts a GraphQL response failed with `code` and returned no data for the field. */
export function expectErrorCode(body: GraphQLResponseBody, code: string): void {
  expect(body.errors?.map((error) => error.extensions?.['code'])).toEqual([code]);
  expect(body.data?.['publish'] ?? null).toBeNull();
}

/** Asserts the next message of `id` is an `error` with `code` (how a failed dispatched subscription ends). */
export async function expectSubscriptionError(client: RawSocket, id: string, code: string): Promise<void> {
  const message = await client.nextMessage();
  expect(message).toMatchObject({ id, type: 'error', payload: [{ extensions: { code } }] });
}

/**
 * Asserts a subscription was refused by its resolver: a `next` with the error, then `complete`
 * (graphql-ws's reference behaviour for a subscribe resolver that throws).
 */
export async function expectRefusedSubscription(client: RawSocket, id: string, code: string): Promise<void> {
  const refused = await client.nextMessage();
  expect(refused).toMatchObject({ id, type: 'next', payload: { errors: [{ extensions: { code } }] } });
  expect((refused.payload as { data?: unknown }).data ?? null).toBeNull();
  expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
}

/** The value of a counter on `GET /metrics` (summed over its label sets); 0 when it has no sample yet. */
export async function metricValue(server: TestServer, name: string): Promise<number> {
  const response = await fetch(`${server.url}/metrics`);
  expect(response.status).toBe(200);
  const text = await response.text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) total += Number(match[2]);
  }
  return total;
}

/** Resolves once `GET /ready` answers 200 (every dependency reachable). */
export async function waitUntilReady(server: TestServer, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => (await fetch(`${server.url}/ready`)).status === 200, {
    timeoutMs,
    intervalMs: 50,
    message: 'the server did not become ready',
  });
}

/** Waits until the server's dispatcher counts exactly `count` subscribers. */
export async function waitForSubscribers(server: TestServer, count: number): Promise<void> {
  // Joined too: a subscriber without a cursor gets what is published once its stream's join is done.
  await waitFor(
    () => {
      const stats = server.stats();
      return stats.subscribers === count && stats.joining === 0;
    },
    { message: `expected ${count} dispatched subscribers, their streams joined` },
  );
}

/** Which of a Tributary process's Redis connections a proxied connection is (`other`: any other name, e.g. BullMQ's). */
export type RedisConnectionKind = 'command' | 'subscriber' | 'other';

export interface RedisProxy {
  /** `redis://127.0.0.1:<proxy port>` */
  readonly url: string;
  /** New connections of this kind are cut as soon as they name themselves. */
  block(kind: RedisConnectionKind): void;
  allow(kind: RedisConnectionKind): void;
  /** Cuts the proxied connections of `kind`, or all (ioredis then reconnects, through the proxy). */
  drop(kind?: RedisConnectionKind): void;
  /**
   * While on, a subscriber connection's `PING` (and everything it sends after) is held back from
   * Redis; turning it off sends what was held. The redis bus PINGs after re-subscribing and
   * catches up from the log when the PONG arrives, so this widens that window at will.
   */
  holdSubscriberPings(on: boolean): void;
}

interface ProxiedConnection {
  kind: RedisConnectionKind | undefined;
  /** Bytes from the client not yet sent to Redis, in order. */
  held: Buffer[] | undefined;
  readonly upstream: Socket;
  readonly drop: () => void;
}

const RESP_PING = Buffer.from('*1\r\n$4\r\nping\r\n');

/**
 * A TCP proxy in front of a real Redis that tells Tributary's connections apart by the name they
 * set (`CLIENT SETNAME tributary` / `tributary-subscriber`), so a test can cut one connection and
 * keep it away while the other comes back: network faults, injected deterministically.
 * Closed after the test.
 */
export async function startRedisProxy(target: { readonly port: number }): Promise<RedisProxy> {
  const blocked = new Set<RedisConnectionKind>();
  const connections = new Set<ProxiedConnection>();
  let holdPings = false;

  const forward = (connection: ProxiedConnection, chunk: Buffer) => {
    if (connection.held) {
      connection.held.push(chunk);
      return;
    }
    const ping = holdPings && connection.kind === 'subscriber' ? chunk.indexOf(RESP_PING) : -1;
    if (ping === -1) {
      connection.upstream.write(chunk);
      return;
    }
    connection.upstream.write(chunk.subarray(0, ping));
    connection.held = [chunk.subarray(ping)];
  };

  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target.port });
    const connection: ProxiedConnection = {
      kind: undefined,
      held: undefined,
      upstream,
      drop: () => {
        client.destroy();
        upstream.destroy();
        connections.delete(connection);
      },
    };
    connections.add(connection);
    for (const socket of [client, upstream]) {
      socket.on('close', connection.drop);
      socket.on('error', connection.drop);
    }
    // Held until the connection has named itself; ioredis sends CLIENT SETNAME first thing.
    let unnamed: Buffer[] | undefined = [];
    client.on('data', (chunk: Buffer) => {
      if (!unnamed) return forward(connection, chunk);
      unnamed.push(chunk);
      const text = Buffer.concat(unnamed).toString('latin1');
      const name = /setname\r\n\$\d+\r\n([^\r]*)\r\n/i.exec(text)?.[1];
      if (name === undefined) return;
      const kind = name === 'tributary-subscriber' ? 'subscriber' : name === 'tributary' ? 'command' : 'other';
      if (blocked.has(kind)) return connection.drop();
      connection.kind = kind;
      const named = Buffer.concat(unnamed);
      unnamed = undefined;
      forward(connection, named);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const connection of [...connections]) connection.drop();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    block: (kind) => void blocked.add(kind),
    allow: (kind) => void blocked.delete(kind),
    drop(kind) {
      for (const connection of [...connections]) if (kind === undefined || connection.kind === kind) connection.drop();
    },
    holdSubscriberPings(on) {
      holdPings = on;
      if (on) return;
      for (const connection of connections) {
        const held = connection.held;
        connection.held = undefined;
        for (const chunk of held ?? []) connection.upstream.write(chunk);
      }
    },
  };
}
