/**
 * One attempt of one delivery, the same in every mode (BullMQ job or embedded loop): the
 * endpoint's gate (concurrency, rate), the signed POST, the attempt recorded, and what comes next —
 * a retry on the seed's curve then a slower tail within the retry window, a dead letter after it,
 * or the lane's next delivery. A `410 Gone` disables the endpoint, as does failing without a
 * success for `disableAfterMs`; either is told as an `endpoint.disabled` event. The delivery a 410
 * answered stays its lane's head, held until the endpoint is enabled (a dead letter would let its
 * entity's later events go first).
 */
import type { Database } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { endpointDisabledEvent } from '../events/webhook-event.ts';
import type { EventRouter } from '../router/event-router.ts';
import { BRIEF_OUTAGE, withRetries } from '../coordination/backoff.ts';
import { createGroupCommit } from '../coordination/group-commit.ts';
import type { WebhookOutcome } from './attempt-outcome.ts';
import type { AttemptTallies } from './attempt-tallies.ts';
import { postponeDelivery, postponeWhileDisabled, recordAttempts, type AttemptInput, type Delivery, type HeldDelivery, type RecordedAttempt } from './delivery-store.ts';
import { streamOf } from '../stream.ts';
import type { EndpointCache } from './endpoint-cache.ts';
import type { EndpointGate } from './endpoint-gate.ts';
import type { SlowEndpoints } from './slow-endpoints.ts';
import { disableEndpoint, recordEndpointOutcome, type SigningEndpoint } from './endpoint-store.ts';
import { resumeHeldIfEnabled } from './endpoint-resume.ts';
import { createRefusedTargetWarnings } from './refused-target-warnings.ts';
import { nextAttemptAt, type RetryPolicy } from './retry-schedule.ts';
import type { WebhookHttpClient } from './webhook-http.ts';
import { signWebhook } from './webhook-signature.ts';

/** What the caller (queue or loop) does next. */
export interface DeliveryOutcome {
  /** Attempt again at this time: the delivery stays pending (and its lane waits). */
  readonly retryAt?: Date;
  /** The delivery is finished; this is its lane's next delivery, due now. */
  readonly nextInLane?: string;
  /**
   * The delivery waits for its endpoint to be enabled, which makes it due at once; `retryAt` only
   * bounds the wait (a queue may look at it again together with others waiting alike).
   */
  readonly waitsForEndpoint?: true;
}

export interface WebhookDeliverer {
  /**
   * Attempts a leased delivery now (or postpones it) and records what happened. `onSent` is called
   * once, when the HTTP part is over (before the attempt is recorded), or when there was none: the
   * caller's slot for attempts in flight may go to the next delivery from then. `onSlow` is called
   * (at most once, before `onSent`) when the attempt goes to the slow endpoints' share
   * (`slow-endpoints.ts`): from then it takes no slot of the caller's either.
   */
  deliver(delivery: Delivery, onSent?: () => void, onSlow?: () => void): Promise<DeliveryOutcome>;
}

export interface WebhookDelivererOptions {
  readonly db: Database;
  readonly endpoints: EndpointCache;
  readonly http: WebhookHttpClient;
  readonly gate: EndpointGate;
  /** Routes `endpoint.disabled` events. */
  readonly router: EventRouter;
  readonly policy: RetryPolicy;
  /** One attempt's limit, in ms. */
  readonly timeoutMs: number;
  /** An endpoint failing without a success this long is disabled, in ms. */
  readonly disableAfterMs: number;
  readonly logger: Logger;
  readonly metrics?: Pick<Metrics, 'webhookAttempts' | 'webhookAttemptSeconds' | 'webhookDeadLetters'>;
  /**
   * Counts each attempt's outcome for the event's topic, in the endpoint's scope (an
   * application-wide endpoint's attempts count as application-wide) — the analytics recorder. @default no analytics
   */
  readonly analytics?: { webhookAttempt(topicKey: string, outcome: WebhookOutcome): void } | undefined;
  /** Attempts of slow endpoints in a share of their own. @default none: every attempt takes its caller's slot until it ends */
  readonly slow?: SlowEndpoints | undefined;
  /** Counts each attempt per endpoint, for the failure-rate alert. @default not counted */
  readonly tallies?: Pick<AttemptTallies, 'count'> | undefined;
  /** The clock the endpoint row's notes and the refused targets' warnings are paced on, in ms. @default Date.now */
  readonly now?: () => number;
}

/**
 * An endpoint's outcome is written to its row at most this often while it does not change, in ms:
 * a success, so the row says the endpoint works; a failure, so a streak another process's success
 * ended is begun again here (or the endpoint's disable would wait for this process's old streak).
 */
const NOTE_EVERY_MS = 10_000;

/** Attempts recorded in one statement at most (the rest go with the next). */
const RECORD_BATCH = 200;

/**
 * A disabled endpoint's deliveries wait; they are looked at again this often, in ms. Enabling the
 * endpoint makes them due at once (endpoint-resume.ts): this only bounds how long one
 * missed by that waits, while a large backlog of a disabled endpoint is not claimed and put back
 * every minute. Even so, its whole backlog (up to `WEBHOOK_MAX_PENDING`) comes due once an hour:
 * it is put back a batch per statement, with one read of the endpoint for the deliveries claimed
 * together, and a BullMQ worker adds one delayed job per hundred of them, not one per delivery
 * (a million jobs held in Redis for a full backlog).
 */
const DISABLED_RECHECK_MS = 3_600_000;

const GONE_REASON = 'the endpoint answered 410 Gone';

/** A slow endpoint's delivery waiting for room in the slow share is looked at again after this, in ms. */
const SLOW_SHARE_RECHECK_MS = 1_000;

/**
 * How far a delivery's due time may be ahead of this process's clock and the delivery still be
 * attempted, in ms. A new delivery is due at the database's `now()`, a retry at the time another
 * process set, and a delayed job may come a moment early: postponed for so little, a delivery would
 * only be claimed again (the embedded loop, which claims by the database's clock, at once, over
 * and over). Clocks further apart than this (no NTP) still work, at that cost.
 */
const CLOCK_SKEW_MS = 500;

export function createWebhookDeliverer(options: WebhookDelivererOptions): WebhookDeliverer {
  const { db, logger } = options;
  const clock = options.now ?? Date.now;
  // This process refuses the address: its log says so, and which setting allows it.
  const refusedTargets = createRefusedTargetWarnings({ logger, now: clock });
  /**
   * A batch of attempts whose record failed (Postgres away for a moment) is recorded again, a few
   * times within the leases: each record applies under its attempt's own lease, so one that
   * committed before its answer was lost cannot move a delivery twice. After the last try the
   * attempts are lost to the log, and their deliveries are attempted again when the leases run out.
   */
  const recordWithRetries = (inputs: readonly AttemptInput[]): Promise<RecordedAttempt[]> =>
    withRetries(() => recordAttempts(db, inputs), {
      ...BRIEF_OUTAGE,
      onRetry: (error) => logger.warn({ err: error, attempts: inputs.length }, 'webhook attempts not recorded; trying again'),
    });
  // Attempts finishing together are recorded together: one statement and one commit for a batch.
  const attempts = createGroupCommit<AttemptInput, RecordedAttempt>({
    write: (inputs) => recordWithRetries(inputs),
    // One statement at a time: the batches grow instead (two at once measured slower: more, smaller statements).
    maxBatch: RECORD_BATCH,
  });
  /**
   * Each endpoint's failure streak as this process last wrote or read it: the endpoint row is
   * written only when the streak starts or ends, or the same outcome was last noted
   * `NOTE_EVERY_MS` ago, not after every attempt.
   */
  const streaks = new Map<string, { failingSince: Date | null; notedAt: number }>();
  /** The endpoint-row writes under way, by endpoint and outcome. */
  const noting = new Map<string, Promise<Date | null>>();

  /** Notes an attempt's outcome; returns since when the endpoint has been failing (null: it is not). */
  const noteOutcome = async (endpointId: string, success: boolean): Promise<Date | null> => {
    const known = streaks.get(endpointId);
    const now = clock();
    const unchanged = known !== undefined && (known.failingSince === null) === success && now - known.notedAt < NOTE_EVERY_MS;
    if (unchanged) return known.failingSince;
    // Attempts finishing together with the same news wait for one write instead of each writing it.
    const key = `${endpointId}:${success}`;
    let writing = noting.get(key);
    if (!writing) {
      writing = recordEndpointOutcome(db, endpointId, success)
        .then((written) => {
          // Deleted meanwhile: nothing to keep of it.
          if (written === undefined) {
            streaks.delete(endpointId);
            return null;
          }
          streaks.set(endpointId, { failingSince: written.failingSince, notedAt: now });
          return written.failingSince;
        })
        .finally(() => noting.delete(key));
      noting.set(key, writing);
    }
    return writing;
  };

  // A disabled endpoint's deliveries are put back together, as attempts are recorded together.
  const waitingForEndpoint = createGroupCommit<HeldDelivery & { dueAt: Date }, undefined>({
    write: async (deliveries) => (await postponeWhileDisabled(db, deliveries), deliveries.map(() => undefined)),
    maxBatch: RECORD_BATCH,
  });
  /**
   * Reads of an endpoint its cached copy says is disabled, by endpoint: deliveries claimed together
   * share one. A read that began a moment before an enable is no harm: putting a delivery back
   * checks the row again.
   */
  const disabledReads = new Map<string, Promise<SigningEndpoint | undefined>>();
  const readDisabled = (endpointId: string) => {
    let reading = disabledReads.get(endpointId);
    if (!reading) {
      reading = options.endpoints.fresh(endpointId).finally(() => disabledReads.delete(endpointId));
      disabledReads.set(endpointId, reading);
    }
    return reading;
  };

  const postpone = async (delivery: Delivery, at: Date): Promise<DeliveryOutcome> => {
    await postponeDelivery(db, delivery, at);
    return { retryAt: at };
  };

  /**
   * Disables the endpoint (its row, then this process's cache) — unless another attempt did so
   * first; returns what to tell then (`tellDisabled`), undefined when there is nothing to tell.
   */
  const disableRow = async (endpoint: SigningEndpoint, reason: string) => {
    const disabled = await disableEndpoint(db, endpoint.id, reason);
    if (!disabled) return undefined;
    logger.warn({ endpoint: endpoint.id, reason }, 'webhook endpoint disabled');
    await options.endpoints.refresh().catch((error: unknown) => logger.warn({ err: error, endpoint: endpoint.id }, 'endpoint cache not refreshed after disabling an endpoint; its next refresh sees it'));
    return { endpoint, reason, disabledAt: disabled.updatedAt };
  };

  /** Tells a disable as an `endpoint.disabled` event. */
  const tellDisabled = async ({ endpoint, reason, disabledAt }: { endpoint: SigningEndpoint; reason: string; disabledAt: Date }) => {
    const notice = endpointDisabledEvent({
      scope: { app: endpoint.app, env: endpoint.env, tenant: endpoint.tenant ?? undefined },
      endpointId: endpoint.id,
      url: endpoint.url,
      reason,
      disabledAt,
    });
    // Tried again like a record, at least once as any source's event: a route that failed after the
    // log append (the webhook tap) places it again — subscribers may see it twice, with the same id;
    // an endpoint gets it once (one initial delivery per event id).
    await withRetries(() => options.router.route(notice), {
      ...BRIEF_OUTAGE,
      onRetry: (error) => logger.warn({ err: error, endpoint: endpoint.id, event: notice.id }, 'endpoint.disabled not routed; trying again'),
    }).catch((error: unknown) => {
      // The endpoint stays disabled (the row says why); after the last try the notice is not sent.
      logger.error({ err: error, endpoint: endpoint.id, event: notice.id }, 'endpoint.disabled could not be routed');
    });
  };

  const disable = async (endpoint: SigningEndpoint, reason: string) => {
    const disabled = await disableRow(endpoint, reason);
    if (disabled) await tellDisabled(disabled);
  };

  const attempt = async (delivery: Delivery, sent: () => void, onSlow: () => void): Promise<DeliveryOutcome> => {
    // The cached endpoint (a change reaches every instance within the cache's refresh); one missing
    // from the cache may be brand new, so it is read.
    let endpoint = options.endpoints.byId(delivery.endpointId) ?? (await options.endpoints.fresh(delivery.endpointId));
    // Deleted: its deliveries went with it.
    if (!endpoint) return {};
    const now = new Date();
    if (delivery.nextAttemptAt !== null && delivery.nextAttemptAt.getTime() - now.getTime() > CLOCK_SKEW_MS) return postpone(delivery, delivery.nextAttemptAt);
    // A disabled endpoint's deliveries wait for it to be enabled again (a test is sent anyway). The
    // row decides before so long a wait: this instance's cache may not have seen an enable yet.
    if (!endpoint.enabled && delivery.trigger !== 'test') {
      endpoint = await readDisabled(delivery.endpointId);
      if (!endpoint) return {};
      if (!endpoint.enabled) {
        const at = new Date(now.getTime() + DISABLED_RECHECK_MS);
        await waitingForEndpoint.submit({ id: delivery.id, lease: delivery.lease, dueAt: at });
        return { retryAt: at, waitsForEndpoint: true };
      }
    }
    const watch = options.slow?.begin(endpoint.id, onSlow);
    if (options.slow && !watch) return postpone(delivery, new Date(now.getTime() + SLOW_SHARE_RECHECK_MS));
    const slot = await options.gate.acquire(endpoint).catch((error: unknown) => {
      watch?.end(undefined);
      throw error;
    });
    if (!slot.ok) {
      watch?.end(undefined);
      return postpone(delivery, new Date(now.getTime() + slot.retryInMs));
    }

    let result;
    try {
      const secrets = endpoint.secrets.length === 1 || (endpoint.previousSecretExpiresAt !== null && endpoint.previousSecretExpiresAt > now) ? endpoint.secrets : endpoint.secrets.slice(0, 1);
      const headers = signWebhook({ id: delivery.eventId, timestampSeconds: Math.floor(now.getTime() / 1000), body: delivery.body, secrets });
      result = await options.http.send({ url: endpoint.url, headers, body: delivery.body, timeoutMs: options.timeoutMs });
    } finally {
      watch?.end(result?.durationMs);
      // The gate counts the endpoint's place free for every later acquire of its own from this call
      // on; with Redis, the others hear of it once it is idle (the gate's close gives back the rest).
      void slot.release();
      sent();
    }

    const delivered = result.outcome === 'delivered';
    if (result.outcome === 'refused') refusedTargets.refused(endpoint.id, result.error);
    // Cut by this process's shutdown (no answer came before `abort`): nothing the receiver did, so
    // it is due again at once (for the next process), not a step along the curve, and it counts
    // toward none of the endpoint's failures — else a receiver slower than the shutdown's wait
    // would fire the failure-rate alert, and feed its disable streak, at every deploy. Nor is it
    // one of the delivery's attempts: recorded as `cut`, it leaves the retry curve and window
    // where they were (migration 0028).
    const cut = result.outcome === 'failed' && result.status === null && options.http.aborted();
    const gone = result.outcome === 'gone';
    // A 410 disables the endpoint before the attempt is recorded: every process then finds it
    // disabled (the row, its cache within the refresh) and claims none of its deliveries to send.
    const told = gone ? await disableRow(endpoint, GONE_REASON) : undefined;
    // Held, not dead-lettered: it stays its lane's head, so its entity's later events wait for it,
    // and goes first after the enable (which makes it due at once: endpoint-resume.ts). A test has
    // no entity, and is sent even to a disabled endpoint: its 410 dead-letters it, as before.
    const heldUntil = gone && delivery.trigger !== 'test' ? new Date(now.getTime() + DISABLED_RECHECK_MS) : undefined;
    let next: Date | null = heldUntil ?? null;
    if (!delivered && !gone) {
      next = cut
        ? new Date()
        : nextAttemptAt({
            firstAttemptAt: delivery.firstAttemptAt ?? now,
            attemptsMade: delivery.attempts + 1,
            now: new Date(),
            retryAfterMs: result.retryAfterMs,
            policy: options.policy,
          });
    }
    const { nextInLane, superseded } = await attempts.submit({
      delivery,
      outcome: cut ? 'cut' : result.outcome,
      status: result.status,
      durationMs: result.durationMs,
      // The log says what it was: the attempt's own error alone would read as the receiver's.
      error: cut ? `cut by shutdown${result.error === null ? '' : ` (${result.error})`}` : result.error,
      responseExcerpt: result.responseExcerpt,
      nextAttemptAt: next,
    });
    if (cut) {
      // Counted under its own outcome only: no tally, no streak, no analytics, no attempt latency.
      options.metrics?.webhookAttempts.inc({ outcome: 'cut' });
      if (superseded) logger.warn({ endpoint: endpoint.id, delivery: delivery.id, event: delivery.eventId }, 'webhook attempt cut after its lease ran out; logged, the delivery left to its new holder');
      return superseded || next === null ? (nextInLane === undefined ? {} : { nextInLane }) : { retryAt: next };
    }
    // In the attempt log now: counted for the failure-rate alert, whatever comes next.
    options.tallies?.count(endpoint.id, !delivered);
    if (superseded) {
      // The lease ran out during the attempt and another holder has the delivery: its record decides
      // what comes next (a 410 is still the endpoint's answer).
      logger.warn({ endpoint: endpoint.id, delivery: delivery.id, event: delivery.eventId }, 'webhook attempt finished after its lease ran out; logged, the delivery left to its new holder');
      options.metrics?.webhookAttempts.inc({ outcome: result.outcome });
      if (told) await tellDisabled(told);
      return nextInLane === undefined ? {} : { nextInLane };
    }
    const failingSince = await noteOutcome(endpoint.id, delivered);
    // As the attempt log has it: a failure that ends the delivery is `dead`, but a 410 says `gone`.
    const outcome = !delivered && next === null && result.outcome !== 'gone' ? 'dead' : result.outcome;
    options.metrics?.webhookAttempts.inc({ outcome });
    options.analytics?.webhookAttempt(streamOf({ app: endpoint.app, env: endpoint.env, tenant: endpoint.tenant ?? undefined }, delivery.topic).key, outcome);
    options.metrics?.webhookAttemptSeconds.observe(result.durationMs / 1000);
    if (!delivered && next === null) {
      options.metrics?.webhookDeadLetters.inc();
      logger.warn({ endpoint: endpoint.id, delivery: delivery.id, event: delivery.eventId, status: result.status, error: result.error }, 'webhook delivery dead-lettered');
    }

    if (told) await tellDisabled(told);
    if (heldUntil) {
      // An enable that came since the disable moved nothing: the record set the hold after it.
      return (await resumeHeldIfEnabled(db, delivery.id)) ? { retryAt: new Date() } : { retryAt: heldUntil, waitsForEndpoint: true };
    }
    if (gone) return nextInLane === undefined ? {} : { nextInLane };
    if (!delivered && endpoint.enabled && failingSince !== null && now.getTime() - failingSince.getTime() >= options.disableAfterMs) {
      // Another process may have had a success meanwhile: the row decides.
      const current = await options.endpoints.fresh(endpoint.id);
      if (current?.enabled && current.failingSince !== null && now.getTime() - current.failingSince.getTime() >= options.disableAfterMs) {
        await disable(current, `no successful delivery for ${Math.round(options.disableAfterMs / 1000)} s`);
      } else streaks.delete(endpoint.id);
    }
    return next === null ? (nextInLane === undefined ? {} : { nextInLane }) : { retryAt: next };
  };

  return {
    async deliver(delivery, onSent, onSlow) {
      let called = false;
      const sent = () => {
        if (called) return;
        called = true;
        onSent?.();
      };
      const slow = () => {
        if (!called) onSlow?.();
      };
      try {
        return await attempt(delivery, sent, slow);
      } finally {
        sent();
      }
    },
  };
}
