import { describe, expect, it } from 'vitest';
import { frameBytes, OversizeWatch, utf8Length } from '../../src/oversize-watch.ts';

describe('utf8Length', () => {
  it('counts UTF-8 bytes as TextEncoder does, surrogate pairs and lone halves included', () => {
    for (const text of ['', 'abc', 'é', '€', '😀', 'a😀b', '\ud800', '\udc00x', 'x'.repeat(1000) + 'ü']) {
      expect(utf8Length(text)).toBe(new TextEncoder().encode(text).length);
    }
  });
});

describe('frameBytes', () => {
  it('is at least the bytes of the frame graphql-ws sends with any id we generate', () => {
    const payload = { query: 'subscription { x }', variables: { k: 'ü'.repeat(10) } };
    const sent = JSON.stringify({ id: '12345678901234567', type: 'subscribe', payload });
    expect(frameBytes(payload)).toBeGreaterThanOrEqual(new TextEncoder().encode(sent).length);
  });
});

describe('OversizeWatch', () => {
  it('takes the largest frame sent after the last one answered for the 1009, once', () => {
    const watch = new OversizeWatch();
    const big = watch.sent(9_000);
    const small = watch.sent(100);
    watch.answered(small);
    const later = watch.sent(200);
    expect(watch.culprit()).toBe(later);
    expect(big).not.toBe(later);
  });

  it('takes none when every frame was answered', () => {
    const watch = new OversizeWatch();
    watch.answered(watch.sent(5_000));
    expect(watch.culprit()).toBeUndefined();
  });
});
