import { randomUUID } from 'node:crypto';
import { ErrorCode, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { RawEventInput, RealtimeEvent } from '../events/envelope.ts';
import { stableEventId } from '../events/event-id.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { PlacedRecord, PublishKeys, RememberedEvent } from './publish-keys.ts';

export interface KeyedPublishDeps {
  readonly router: EventRouter;
  readonly keys: PublishKeys;
  readonly logger: Logger;
}

export interface KeyedMessage {
  /** The message to route (its id is the key's). */
  readonly message: RawEventInput;
  /** `keyId(scope, key)`. */
  readonly keyId: string;
  /** `requestFingerprint(topic, type, payload)`. */
  readonly fingerprint: string;
}

/**
 * Routes a keyed publish once: the first try places the event (its id derived from the key and
 * the request) and remembers it; a later try with the key is answered with that event — after
 * storing its webhook deliveries when the first try failed there — and places nothing.
 * @throws TributaryError CONFLICT (details `field: idempotencyKey`) when the key was used for another
 *   request, or a try with it has not placed its event yet (details `inFlight: true`: retry shortly).
 */
export async function publishOnce(deps: KeyedPublishDeps, keyed: KeyedMessage): Promise<RealtimeEvent> {
  const { router, keys, logger } = deps;
  const { keyId, fingerprint } = keyed;
  const token = randomUUID();
  const claim = await keys.claim(keyId, fingerprint, token);
  if (!claim.claimed) {
    const { record } = claim;
    // `answered`: a document write's key (its fingerprint differs too).
    if (record.fingerprint !== fingerprint || record.state === 'answered') {
      throw new TributaryError(ErrorCode.CONFLICT, 'This idempotency key was used for another request (another topic, type or payload, or not a publish); use a new key for a new event', {
        details: { field: 'idempotencyKey' },
      });
    }
    if (record.state === 'in-flight') {
      throw new TributaryError(ErrorCode.CONFLICT, 'A publish with this idempotency key is being placed, or its try failed moments ago; retry shortly', {
        details: { field: 'idempotencyKey', inFlight: true },
      });
    }
    // The same request: its payload is the first one's.
    const event: RealtimeEvent = { ...record.event, payload: keyed.message.payload };
    if (record.state === 'placed') {
      // The first try's event is out; what failed after it (its webhook deliveries) is done now.
      await router.completePlaced([event]);
      await remember(deps, keyId, { state: 'done', fingerprint, event: record.event });
    }
    return event;
  }

  let placed = false;
  try {
    const event = await router.route(
      // Another request under a key forgotten meanwhile (expired, or a restart) is another event.
      { ...keyed.message, id: stableEventId('publish', keyId, fingerprint) },
      {
        placed: async (placedEvent) => {
          placed = true;
          await remember(deps, keyId, { state: 'placed', fingerprint, event: withoutPayload(placedEvent) });
        },
      },
    );
    await remember(deps, keyId, { state: 'done', fingerprint, event: withoutPayload(event) });
    return event;
  } catch (error) {
    // Nothing placed (the log append failed): the key is free for the retry. Once placed, it keeps
    // the event, and the retry finishes what failed.
    if (!placed) await keys.release(keyId, fingerprint, token).catch((releaseError: unknown) => logger.warn({ err: releaseError }, 'publish key not released; it frees itself when its try runs out'));
    throw error;
  }
}

/**
 * Remembers a key's event. Its failure (Redis away) does not fail the publish, whose event is
 * out: the key stays held by this try until that runs out, and a retry after it places the event
 * again under the same id (subscribers and webhook receivers de-duplicate on it).
 */
async function remember(deps: KeyedPublishDeps, keyId: string, record: PlacedRecord): Promise<void> {
  await deps.keys.remember(keyId, record).catch((error: unknown) => deps.logger.warn({ err: error, state: record.state }, 'publish key not remembered'));
}

function withoutPayload(event: RealtimeEvent): RememberedEvent {
  const { payload: _payload, ...rest } = event;
  return rest;
}
