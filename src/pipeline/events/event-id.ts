import { createHash, randomBytes } from 'node:crypto';

/*
 * Event ids: `evt_` and URL-safe characters. An event a source may produce again (a
 * WAL position read twice, an outbox row routed twice) gets an id derived from what identifies it
 * in the source, so a redelivery carries the same id and subscribers de-duplicate on it; any other
 * event gets a random one.
 */

/** Random bytes per id (16 URL-safe characters). */
const ID_BYTES = 12;
/** Ids drawn from one call to the system's random source: one syscall for many publishes, not one each. */
const IDS_PER_DRAW = 256;
let pool = Buffer.alloc(0);
let offset = 0;

/** A random id, for events that are produced once (a publish, a document write). */
export function newEventId(): string {
  if (offset + ID_BYTES > pool.length) {
    pool = randomBytes(ID_BYTES * IDS_PER_DRAW);
    offset = 0;
  }
  const id = pool.toString('base64url', offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return `evt_${id}`;
}

/** The same id for the same parts, e.g. `stableEventId(source, lsn, mapping)`. */
export function stableEventId(...parts: readonly string[]): string {
  return `evt_${createHash('sha256').update(parts.join('|')).digest('base64url').slice(0, 22)}`;
}
