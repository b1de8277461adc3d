/**
 * Random bytes for the small random strings drawn on hot paths (event ids, stream epochs): taken
 * from a block read from the system's cryptographic source once per many draws, instead of one
 * `randomBytes` call — a syscall, and OpenSSL's fork check — each time. Every byte is used once.
 */
import { randomBytes } from 'node:crypto';

/** Bytes read from the system's source at once. */
const BLOCK_BYTES = 4096;

let block = Buffer.alloc(0);
let offset = 0;

/** `bytes` fresh random bytes (at most `BLOCK_BYTES`), encoded. */
export function randomString(bytes: number, encoding: 'hex' | 'base64url'): string {
  if (bytes > BLOCK_BYTES) throw new RangeError(`at most ${BLOCK_BYTES} random bytes at once`);
  if (offset + bytes > block.length) {
    block = randomBytes(BLOCK_BYTES);
    offset = 0;
  }
  const drawn = block.toString(encoding, offset, offset + bytes);
  offset += bytes;
  return drawn;
}
