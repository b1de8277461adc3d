import { describe, expect, it } from 'vitest';
import { newEventId } from '../../src/pipeline/events/event-id.ts';
import { newEpoch } from '../../src/pipeline/log/cursor.ts';
import { randomString } from '../../src/pipeline/random-pool.ts';

describe('random pool', () => {
  it('draws strings of the asked size and encoding, never the same bytes twice, across many blocks', () => {
    const seen = new Set<string>();
    // 12 bytes a draw over several 4 KiB blocks, and draws that do not divide a block.
    for (let draw = 0; draw < 3_000; draw += 1) {
      const id = randomString(12, 'base64url');
      expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
      seen.add(id);
      const odd = randomString(7, 'hex');
      expect(odd).toMatch(/^[0-9a-f]{14}$/);
      seen.add(odd);
    }
    expect(seen.size).toBe(6_000);
  });

  it('refuses a draw larger than its block', () => {
    expect(() => randomString(5_000, 'hex')).toThrow(RangeError);
  });

  it('gives event ids and stream epochs their shapes', () => {
    expect(newEventId()).toMatch(/^evt_[A-Za-z0-9_-]{16}$/);
    expect(newEpoch()).toMatch(/^[0-9a-f]{16}$/);
    expect(newEpoch()).not.toBe(newEpoch());
  });
});
