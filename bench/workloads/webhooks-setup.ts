/**
 * What the `webhooks` workload sets up around Tributary: its two delivery modes, each
 * process's environment (its platform database on the private Postgres, Redis for BullMQ, targets
 * on loopback allowed), and the endpoints, created over GraphQL as an administrator would. The
 * servers run in development mode (no `JWT_SECRET`): every caller is the development principal —
 * app, env and tenant `default`, role `admin` — so it may create endpoints and publish.
 */
import { DEFAULT_RETRY_POLICY, retryDelayMs } from '../../src/pipeline/webhooks/retry-schedule.ts';
import type { PeerName } from '../peers/peer.ts';
import { graphqlData } from '../lib/graphql-http.ts';
import type { PeerProcess } from '../lib/peer-process.ts';
import { spreadTopic, WEBHOOK_TOPIC } from '../lib/webhook-payload.ts';

/** Tributary's two ways to deliver: BullMQ jobs (with Redis) or the in-process loop (without). */
export interface Mode {
  readonly name: 'tributary-bullmq' | 'tributary-embedded';
  /** The bench peer that runs it. */
  readonly peer: PeerName;
  /** It needs `REDIS_URL` (and delivers through BullMQ). */
  readonly redis: boolean;
}

export const MODES: readonly Mode[] = [
  { name: 'tributary-bullmq', peer: 'tributary-redis', redis: true },
  { name: 'tributary-embedded', peer: 'tributary', redis: false },
];

export type ModeName = Mode['name'];

/**
 * How long a server is kept running after its last step before it is stopped, in ms, so that a
 * second copy of a delivery still shows at the receivers: a copy comes from a retry, and the first
 * retry waits up to 1.2 s (`retryDelayMs`, its jitter at its bound) after the attempt that failed,
 * then is picked up by the next look at due deliveries (the embedded loop's at least every second).
 * Retries of later attempts, or of an attempt that timed out (10 s), are not waited for.
 */
export const LATE_COPY_GRACE_MS = retryDelayMs({ attemptsMade: 1, policy: DEFAULT_RETRY_POLICY, random: () => 1 }) + 1500;

/** What a server of a mode is started with. */
export interface ModeEnvironment {
  /** Its platform database. */
  readonly databaseUrl: string;
  /** `redis://…` when the process uses Redis. */
  readonly redisUrl?: string;
  /** Its Redis key prefix; processes that share a queue share it. */
  readonly redisKeyPrefix?: string;
  /** WEBHOOK_CONCURRENCY (attempts in flight per process). @default the server's (50) */
  readonly concurrency?: number;
}

export function environmentOf(env: ModeEnvironment): Record<string, string> {
  return {
    DATABASE_URL: env.databaseUrl,
    // The receivers listen on 127.0.0.1: refused otherwise.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    ...(env.redisUrl !== undefined && { REDIS_URL: env.redisUrl }),
    ...(env.redisKeyPrefix !== undefined && { REDIS_KEY_PREFIX: env.redisKeyPrefix }),
    ...(env.concurrency !== undefined && { WEBHOOK_CONCURRENCY: String(env.concurrency) }),
  };
}

const CREATE_ENDPOINT = `mutation($input: WebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id } }
}`;

/**
 * Creates one endpoint per URL (limits left at their defaults), each selecting the workload's
 * topic — with `spread`, endpoint i selecting `bench.webhooks.i` only; resolves with their ids.
 */
export async function createEndpoints(peer: PeerProcess, urls: readonly string[], options: { readonly spread?: boolean } = {}): Promise<string[]> {
  const ids: string[] = [];
  for (const [index, url] of urls.entries()) {
    const events = [options.spread === true ? spreadTopic(index) : WEBHOOK_TOPIC];
    const data = await graphqlData(peer.httpUrl, CREATE_ENDPOINT, { input: { url, events, description: `bench receiver ${index}` } });
    ids.push((data['createWebhookEndpoint'] as { endpoint: { id: string } }).endpoint.id);
  }
  return ids;
}
