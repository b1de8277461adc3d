import { createHash } from 'node:crypto';
import { randomString } from '../random-pool.ts';

/*
 * Event ids: `evt_` and URL-safe characters. An event a source may produce again (a
 * WAL position read twice, an outbox row routed twice) gets an id derived from what identifies it
 * in the source, so a redelivery carries the same id and subscribers de-duplicate on it; any other
 * event gets a random one.
 */

/** Random bytes per id (16 URL-safe characters). */
const ID_BYTES = 12;

/** A random id, for events that are produced once (a publish, a document write). */
export function newEventId(): string {
  return `evt_${randomString(ID_BYTES, 'base64url')}`;
}

/** The same id for the same parts, e.g. `stableEventId(source, lsn, mapping)`. */
export function stableEventId(...parts: readonly string[]): string {
  return `evt_${createHash('sha256').update(parts.join('|')).digest('base64url').slice(0, 22)}`;
}
