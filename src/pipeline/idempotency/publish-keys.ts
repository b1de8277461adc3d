/**
 * Idempotency keys of `publish`: what a publisher's retry finds of its first try.
 *
 * A publish is placed in the log (its subscribers have it) before its webhook deliveries are
 * stored; when that store fails (the platform database away), the publish answers an error
 * although the event went out. Without a key, the publisher's retry is a second event. With one,
 * the retry finds the first try's event: it is answered with it, after storing its deliveries if
 * the first try did not get that far.
 *
 * A key is remembered per scope (app, env, tenant), with a fingerprint of the request (topic,
 * type, payload): the same key with another request is refused, as a client bug rather than a
 * retry. Kept in Redis when there is one (every instance sees it), in this process's memory
 * otherwise (bounded; a restart forgets it). Best effort where the key's store fails or forgets
 * (Redis away while remembering, a restart without Redis): a retry then places the event again —
 * under the same id, derived from the key and the request, so subscribers and webhook receivers
 * de-duplicate it.
 *
 * A record keeps the event without its payload: a retry is only answered when its fingerprint
 * matches, so its own payload is the first one's (the same JSON, keys perhaps in another order).
 *
 * The same keys, in the same store, make document writes safe to retry (`sync/keyed-writes.ts`):
 * their records are `answered`, holding what the write answered as JSON its own code reads back.
 * One key names one request of its scope: a key used by a publish is CONFLICT for a document write,
 * and the other way round (their fingerprints differ).
 */
import { createHash } from 'node:crypto';
import type { RealtimeEvent } from '../events/envelope.ts';
import { isJsonObject, type JsonObject } from '../events/json.ts';
import { scopeKey, type Scope } from '../scope.ts';

/** A placed event as a key remembers it: all but its payload. */
export type RememberedEvent = Omit<RealtimeEvent, 'payload'>;

/** What a key's earlier use left. */
export type KeyRecord =
  /** A try is placing its event now (or died doing so: the record expires after `inFlightMs`). */
  | { readonly state: 'in-flight'; readonly fingerprint: string; readonly token: string }
  /** The event is in the log; what follows it (its webhook deliveries) has not been done. */
  | { readonly state: 'placed'; readonly fingerprint: string; readonly event: RememberedEvent }
  /** The publish was answered with this event. */
  | { readonly state: 'done'; readonly fingerprint: string; readonly event: RememberedEvent }
  /** Another keyed request (a document write) was answered: what it answered, as its own code reads it back. */
  | { readonly state: 'answered'; readonly fingerprint: string; readonly answer: JsonObject };

/** A key's record once its event is placed. */
export type PlacedRecord = Extract<KeyRecord, { state: 'placed' | 'done' }>;

/** A key's record once its request was made: a publish's event placed, or another request's answer. */
export type RememberedRecord = Exclude<KeyRecord, { state: 'in-flight' }>;

/** The outcome of claiming a key: free (and now held by `token`), or what an earlier use left. */
export type KeyClaim = { readonly claimed: true } | { readonly claimed: false; readonly record: KeyRecord };

export interface PublishKeys {
  /**
   * Takes `id` for a try (an in-flight record under `token`, expiring after `inFlightMs`), unless
   * an earlier use is remembered: then returns that, and takes nothing.
   */
  claim(id: string, fingerprint: string, token: string): Promise<KeyClaim>;
  /** Remembers the key's event, placed (`placed`) or answered (`done`) — or another request's answer (`answered`) — for the key's lifetime. */
  remember(id: string, record: RememberedRecord): Promise<void>;
  /** Frees the key when the try that claimed it (`fingerprint`, `token`) did nothing (its log append failed): a retry starts afresh. */
  release(id: string, fingerprint: string, token: string): Promise<void>;
  close(): Promise<void>;
}

export interface PublishKeyTimes {
  /** How long a key is remembered once its event is placed, in ms. */
  readonly ttlMs: number;
  /** How long a try holds a key before it is placed; a try that died frees it then. */
  readonly inFlightMs: number;
}

/** Longest idempotency key, in characters. */
export const MAX_KEY_LENGTH = 255;

/** Printable ASCII without spaces: UUIDs, ULIDs, `order-7-shipped` and the like. */
const KEY_PATTERN = /^[\x21-\x7e]+$/;

/** Whether `key` may be an idempotency key (1–255 printable ASCII characters, no spaces). */
export function isValidKey(key: string): boolean {
  return key.length > 0 && key.length <= MAX_KEY_LENGTH && KEY_PATTERN.test(key);
}

/** The key's id: its scope and text hashed, so no client text reaches a Redis key and two scopes never share one. */
export function keyId(scope: Scope, key: string): string {
  return createHash('sha256').update(`${scopeKey(scope)}\n${key}`).digest('base64url');
}

/** What makes two publishes the same request: topic, type and payload (its objects' keys in any order). */
export function requestFingerprint(topic: string, type: string, payload: JsonObject, entity?: string): string {
  // Without an entity, as before there was one: a key stored then still matches its retry.
  return fingerprintOf(entity === undefined ? [topic, type, payload] : [topic, type, payload, entity]);
}

/** A request's fingerprint from its parts (JSON values; objects' keys in any order): what two tries of one request share. */
export function fingerprintOf(parts: readonly unknown[]): string {
  return createHash('sha256')
    .update(JSON.stringify(parts, (_key, value: unknown) => (isJsonObject(value) ? sortedKeys(value) : value)))
    .digest('base64url');
}

/** The exact text of an in-flight record: what its try's release compares. */
export function inFlightRecord(fingerprint: string, token: string): string {
  return JSON.stringify({ state: 'in-flight', fingerprint, token } satisfies KeyRecord);
}

function sortedKeys(value: JsonObject): JsonObject {
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, value[key]]));
}
