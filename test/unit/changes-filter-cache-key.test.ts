/**
 * A `changes` filter is parsed once per operation, not once per update: GraphQL builds the
 * argument's object anew from a filter written in the document at every resolve, so the parsed
 * filter is kept under the written value — unless a variable inside it makes operations of the
 * same document text differ.
 */
import { Kind, parse, type FieldNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { filterCacheKey } from '../../src/resolvers/cdc.ts';

/** The `changes` field's node of a one-field subscription, as `info.fieldNodes` holds it. */
function fieldNodesOf(query: string): readonly FieldNode[] {
  const operation = parse(query).definitions[0] as OperationDefinitionNode;
  return [operation.selectionSet.selections[0] as FieldNode];
}

describe('the key a changes filter is parsed under', () => {
  it('is the written value for a filter written inline: the same at every resolve, whatever object GraphQL built', () => {
    const info = { fieldNodes: fieldNodesOf('subscription { changes(model: "shop.orders", filter: {status: "eq.active", n: ["in.(1,2)"]}) { id } }') };
    const first = filterCacheKey(info, { status: 'eq.active', n: ['in.(1,2)'] });
    const second = filterCacheKey(info, { status: 'eq.active', n: ['in.(1,2)'] });
    expect(first).toBe(second);
    expect(first).toMatchObject({ kind: Kind.OBJECT });
  });

  it('is the argument itself for a variable, and for a written value that holds a variable', () => {
    const argument = { status: 'eq.active' };
    expect(filterCacheKey({ fieldNodes: fieldNodesOf('subscription($f: JSON) { changes(model: "shop.orders", filter: $f) { id } }') }, argument)).toBe(argument);
    const nested = { fieldNodes: fieldNodesOf('subscription($s: String) { changes(model: "shop.orders", filter: {status: $s}) { id } }') };
    expect(filterCacheKey(nested, argument)).toBe(argument);
    const listed = { fieldNodes: fieldNodesOf('subscription($s: String) { changes(model: "shop.orders", filter: {status: ["eq.a", $s]}) { id } }') };
    expect(filterCacheKey(listed, argument)).toBe(argument);
  });

  it('is undefined without a filter', () => {
    expect(filterCacheKey({ fieldNodes: fieldNodesOf('subscription { changes(model: "shop.orders") { id } }') }, undefined)).toBeUndefined();
  });
});
