import { buildSchema, GraphQLError, Kind, parse, print, validate, type DocumentNode, type FieldNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createYoga } from 'graphql-yoga';
import { useOperationLimits } from '../../src/server/operation-limits.ts';
import { compactDocument, createParseCaches } from '../../src/server/parse-cache.ts';

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

  it('weigh a document by its text and its nodes, and drop the least recently used past the bytes bound', () => {
    // '{ a }' is 5 nodes (document, operation, selection set, field, name): 5 + 5 * 144 bytes,
    // parsed or compact.
    const weight = 5 + 5 * 144;
    const { documentCache } = createParseCaches({ maxBytes: 2 * weight });
    documentCache.set('{ a }', parse('{ a }'));
    documentCache.set('{ b }', compactDocument(parse('{ b }')));
    expect(documentCache.bytes).toBe(2 * weight);
    documentCache.get('{ a }'); // now the most recently used
    documentCache.set('{ c }', parse('{ c }'));
    expect([documentCache.get('{ a }'), documentCache.get('{ b }'), documentCache.get('{ c }')].map(Boolean)).toEqual([true, false, true]);
    expect(documentCache.bytes).toBe(2 * weight);
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

describe('a compact document', () => {
  const text = `# a comment the tokens would keep
subscription Orders($topic: String!, $where: EventWhere) @live {
  events(topic: $topic, where: $where) { id ...Fields }
}
fragment Fields on Event { payload cursor @include(if: true) }`;

  it('is the parsed tree, node for node, with the same locations', () => {
    const parsed = parse(text);
    const compact = compactDocument(parsed);
    expect(compact).not.toBe(parsed);
    expect(print(compact)).toBe(print(parsed));
    // JSON carries every node and every location (`{ start, end }`).
    expect(JSON.stringify(compact)).toBe(JSON.stringify(parsed));
    const operation = compact.definitions[0] as OperationDefinitionNode;
    const events = operation.selectionSet.selections[0] as FieldNode;
    const error = new GraphQLError('boom', { nodes: events });
    expect(error.locations).toEqual([{ line: 3, column: 3 }]);
    expect(String(error)).toBe(String(new GraphQLError('boom', { nodes: (parsed.definitions[0] as OperationDefinitionNode).selectionSet.selections[0] as FieldNode })));
  });

  it('keeps no token of its text', () => {
    const compact = compactDocument(parse(text));
    const pending: unknown[] = [compact];
    let nodes = 0;
    while (pending.length > 0) {
      const value = pending.pop();
      if (Array.isArray(value)) pending.push(...(value as unknown[]));
      else if (typeof value === 'object' && value !== null && 'kind' in value) {
        nodes += 1;
        const { loc, ...rest } = value as { loc?: Record<string, unknown> };
        expect(loc?.['source']).toBeDefined();
        expect(loc?.['startToken']).toBeUndefined();
        expect(loc?.['endToken']).toBeUndefined();
        pending.push(...Object.values(rest));
      }
    }
    expect(nodes).toBeGreaterThan(25);
  });

  it('gives the same validation errors, located the same', () => {
    const schema = buildSchema(`
      type Query { a: String }
      type Subscription { events(topic: String!): Event }
      type Event { id: ID payload: String }
    `);
    const invalid = 'subscription S($topic: String!) { events(topic: $topic, nope: 1) { id missing } }';
    const errors = validate(schema, compactDocument(parse(invalid))).map((error) => error.toJSON());
    expect(errors.length).toBeGreaterThan(1);
    expect(errors).toEqual(validate(schema, parse(invalid)).map((error) => error.toJSON()));
    expect(compactDocument(parse(invalid)).definitions[0]?.kind).toBe(Kind.OPERATION_DEFINITION);
  });
});

describe("the server's parse", () => {
  it('returns compact documents, and the cache keeps that one', () => {
    const schema = buildSchema('type Query { a: String }');
    const parseCaches = createParseCaches();
    const yoga = createYoga({ schema, parserAndValidationCache: parseCaches, plugins: [useOperationLimits({ maxDepth: 10, maxAliases: 10, maxTokens: 100 })] });
    const text = '# kept in the text, not in tokens\n{ a }';
    const { parse: parseOperation } = yoga.getEnveloped({});
    const document = parseOperation(text) as DocumentNode;
    expect(document.loc?.startToken).toBeUndefined();
    expect(document.loc?.source.body).toBe(text);
    expect(parseCaches.documentCache.get(text)).toBe(document);
    expect(yoga.getEnveloped({}).parse(text)).toBe(document);
  });
});
