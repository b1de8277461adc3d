/**
 * Event ids and cursors for the peers that have no event log: the same shapes and sizes as
 * Tributary's (`evt_` + 12 random bytes in base64url; base64url of `<epoch>:<position>`), so a
 * `next` frame carries the same number of bytes whichever peer built it.
 */
import { randomBytes } from 'node:crypto';

export interface EventIdentity {
  readonly id: string;
  readonly cursor: string;
}

export interface EventIdentities {
  next(): EventIdentity;
}

export function createEventIdentities(): EventIdentities {
  const epoch = randomBytes(8).toString('hex');
  let position = 0;
  return {
    next() {
      position += 1;
      return {
        id: `evt_${randomBytes(12).toString('base64url')}`,
        cursor: Buffer.from(`${epoch}:${position}`).toString('base64url'),
      };
    },
  };
}
