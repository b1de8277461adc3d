import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createParseCaches } from '../../src/server/parse-cache.ts';

describe('the parse caches', () => {
  it('keep documents up to the text length, and parse longer ones every time', () => {
    const { documentCache } = createParseCaches({ maxTextLength: 100 });
    const short = '{ viewer { subject } }';
    const long = `# ${'x'.repeat(100)}\n{ viewer { subject } }`;
    documentCache.set(short, parse(short));
    documentCache.set(long, parse(long));
    expect(documentCache.get(short)).toBeDefined();
    expect(documentCache.get(long)).toBeUndefined();
    expect(documentCache.size).toBe(1);
  });

  it('weigh a document by its text and its tokens, and drop the least recently used past the bytes bound', () => {
    const texts = ['{ a }', '{ b }', '{ c }'];
    // '{ a }' has 5 tokens with <SOF> and <EOF>: 5 + 5 * 256 bytes.
    const { documentCache } = createParseCaches({ maxBytes: 2 * (5 + 5 * 256) });
    for (const text of texts.slice(0, 2)) documentCache.set(text, parse(text));
    expect(documentCache.bytes).toBe(2 * (5 + 5 * 256));
    documentCache.get('{ a }'); // now the most recently used
    documentCache.set('{ c }', parse('{ c }'));
    expect([documentCache.get('{ a }'), documentCache.get('{ b }'), documentCache.get('{ c }')].map(Boolean)).toEqual([true, false, true]);
    expect(documentCache.bytes).toBe(2 * (5 + 5 * 256));
  });

  it('keep at most maxEntries, and never a value heavier than the whole bound', () => {
    const { documentCache, errorCache } = createParseCaches({ maxEntries: 2, maxBytes: 4096 });
    for (const text of ['{ a }', '{ b }', '{ c }']) documentCache.set(text, parse(text));
    expect(documentCache.size).toBe(2);
    expect(documentCache.get('{ a }')).toBeUndefined();
    const dense = `{ ${Array.from({ length: 50 }, (_, index) => `f${index}`).join(' ')} }`;
    documentCache.set(dense, parse(dense));
    expect(documentCache.get(dense)).toBeUndefined();
    errorCache.set('{ a ', new Error('Syntax Error'));
    expect(errorCache.get('{ a ')).toBeInstanceOf(Error);
  });
});
