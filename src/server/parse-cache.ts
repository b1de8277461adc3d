import type { DocumentNode } from 'graphql';

/**
 * yoga's parse caches — parsed documents and parse errors, keyed by the document's text — bounded
 * in memory, not only in entries. yoga's own keep 1,024 entries of any size for an hour: a caller
 * within every complexity limit pins a megabyte of text per entry (a comment or a string literal
 * is one token), or half a megabyte of syntax tree (2,000 tokens). Here a text longer than
 * `maxTextLength` is parsed every time and never kept, and the entries kept weigh at most
 * `maxBytes` together, the least recently used dropped first. yoga's validation cache is keyed by
 * the cached documents themselves (a WeakMap): it goes with them.
 */
export interface ParseCache<T> {
  get(text: string): T | undefined;
  /** Keeps `value` for `text`, unless the text is too long or the value weighs too much alone. */
  set(text: string, value: T): void;
  readonly size: number;
  /** The entries' estimated weight, in bytes. */
  readonly bytes: number;
}

export interface ParseCacheOptions {
  /** Entries kept at most, per cache. @default 1024 (yoga's) */
  readonly maxEntries?: number;
  /** Estimated bytes the entries of one cache weigh together at most. @default 33554432 (32 MiB) */
  readonly maxBytes?: number;
  /** Longest document text kept, in characters; a longer one is parsed at each request. @default 65536 */
  readonly maxTextLength?: number;
}

/** What `parserAndValidationCache` takes: the caches of parsed documents and of parse errors. */
export interface ParseCaches {
  readonly documentCache: ParseCache<DocumentNode>;
  readonly errorCache: ParseCache<unknown>;
}

/** Syntax tree per token, tokens included (graphql-js 16: ~250 bytes, measured). */
const BYTES_PER_TOKEN = 256;
/** A parse error beside its text: the error, its source and locations. */
const BYTES_PER_ERROR = 1024;

export function createParseCaches(options: ParseCacheOptions = {}): ParseCaches {
  return {
    documentCache: createParseCache(options, (text, document: DocumentNode) => text.length + BYTES_PER_TOKEN * tokenCount(document)),
    errorCache: createParseCache(options, (text) => text.length + BYTES_PER_ERROR),
  };
}

function createParseCache<T>(options: ParseCacheOptions, weigh: (text: string, value: T) => number): ParseCache<T> {
  const maxEntries = options.maxEntries ?? 1024;
  const maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
  const maxTextLength = options.maxTextLength ?? 65_536;
  // A Map keeps insertion order: re-inserting on use makes its first key the least recently used.
  const entries = new Map<string, { readonly value: T; readonly bytes: number }>();
  let bytes = 0;
  const forget = (text: string) => {
    const entry = entries.get(text);
    if (entry === undefined) return;
    entries.delete(text);
    bytes -= entry.bytes;
  };
  return {
    get(text) {
      const entry = entries.get(text);
      if (entry === undefined) return undefined;
      entries.delete(text);
      entries.set(text, entry);
      return entry.value;
    },
    set(text, value) {
      if (text.length > maxTextLength) return;
      const weight = weigh(text, value);
      if (weight > maxBytes) return;
      forget(text);
      entries.set(text, { value, bytes: weight });
      bytes += weight;
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries && bytes <= maxBytes) break;
        forget(oldest);
      }
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}

/** Tokens of a parsed document, comments included (all of them are kept in its tree). */
function tokenCount(document: DocumentNode): number {
  let count = 0;
  for (let token = document.loc?.startToken ?? null; token !== null; token = token.next) count += 1;
  return count;
}
