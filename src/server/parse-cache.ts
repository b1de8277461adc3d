import type { DocumentNode, Source } from 'graphql';

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

/** Syntax tree per node of a compact document, its location and lists included (~135 bytes, measured). */
const BYTES_PER_NODE = 144;
/** A parse error beside its text: the error, its source and locations. */
const BYTES_PER_ERROR = 1024;

export function createParseCaches(options: ParseCacheOptions = {}): ParseCaches {
  return {
    documentCache: createParseCache(options, (text, document: DocumentNode) => text.length + BYTES_PER_NODE * nodeCount(document)),
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

/** Nodes of a parsed document (objects with a `kind`), counted without recursion. */
function nodeCount(document: DocumentNode): number {
  let count = 0;
  const pending: unknown[] = [document];
  while (pending.length > 0) {
    const value = pending.pop();
    if (Array.isArray(value)) {
      for (const item of value as unknown[]) pending.push(item);
    } else if (isNode(value)) {
      count += 1;
      for (const key in value) if (key !== 'loc') pending.push(value[key]);
    }
  }
  return count;
}

/**
 * Where a node is in its source, as graphql-js's `Location` minus the token list: the same
 * `start`, `end` and `source` (all that `GraphQLError` reads for `locations`, and `printLocation`
 * for messages) and the same JSON.
 */
class SourceSpan {
  readonly start: number;
  readonly end: number;
  readonly source: Source;

  constructor(start: number, end: number, source: Source) {
    this.start = start;
    this.end = end;
    this.source = source;
  }

  toJSON(): { start: number; end: number } {
    return { start: this.start, end: this.end };
  }

  get [Symbol.toStringTag](): string {
    return 'Location';
  }
}

/**
 * The document as the caches keep it, and every subscription cohort executes it for its life:
 * the same tree with each node's `loc` a `SourceSpan`. graphql-js's `Location` links the node to
 * its first and last token, and the tokens to each other (`prev`/`next`), so a parsed document
 * pins every token of its text, comments included: over half its weight (9.8 KB of a 32-node
 * subscription, 4.4 KB compact). Nothing reads the tokens after parsing — errors are located
 * from `start` and `source` — but `loc.startToken`/`loc.endToken` are undefined here. Also
 * shared, being read-only like the whole tree: a child's span equal to its parent's (`id`'s
 * field and its name), and one frozen empty list (`directives: []` of every field). Built
 * without recursion (a document is as deep as the parser allowed), into new objects: the parsed
 * one is the parser's alone until it returns.
 */
export function compactDocument(document: DocumentNode): DocumentNode {
  const root: Record<string, unknown> = {};
  const pending: Pending[] = [{ from: document as unknown as Record<string, unknown>, to: root, parentSpan: undefined }];
  for (let step = pending.pop(); step !== undefined; step = pending.pop()) {
    const { from, to, parentSpan } = step;
    const span = spanOf(from['loc'], parentSpan);
    for (const key in from) {
      const value = from[key];
      if (key === 'loc') to[key] = span ?? value;
      else if (!Array.isArray(value)) to[key] = copyOf(value, span, pending);
      else to[key] = value.length === 0 ? EMPTY_LIST : (value as unknown[]).map((item) => copyOf(item, span, pending));
    }
  }
  return root as unknown as DocumentNode;
}

interface Pending {
  readonly from: Record<string, unknown>;
  readonly to: Record<string, unknown>;
  readonly parentSpan: SourceSpan | undefined;
}

const EMPTY_LIST: readonly never[] = Object.freeze([]);

function spanOf(loc: unknown, parentSpan: SourceSpan | undefined): SourceSpan | undefined {
  if (!isLocation(loc)) return undefined;
  if (parentSpan?.start === loc.start && parentSpan.end === loc.end) return parentSpan;
  return new SourceSpan(loc.start, loc.end, loc.source);
}

/** A node's empty copy, queued to be filled; anything else (a name, a flag) as it is. */
function copyOf(value: unknown, parentSpan: SourceSpan | undefined, pending: Pending[]): unknown {
  if (!isNode(value)) return value;
  const copy: Record<string, unknown> = {};
  pending.push({ from: value, to: copy, parentSpan });
  return copy;
}

function isNode(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string';
}

function isLocation(value: unknown): value is { start: number; end: number; source: Source } {
  return typeof value === 'object' && value !== null && typeof (value as { start?: unknown }).start === 'number';
}
