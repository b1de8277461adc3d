/**
 * A `changes` filter is parsed once per operation, not once per update: GraphQL builds the
 * argument's object anew from a filter written in the document at every resolve, so the parsed
 * filter is kept under the written value — and, when a variable inside it makes operations of the
 * same document text differ, under the argument's value as well.
 */
import { parse, type FieldNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { parsedFilterFor } from '../../src/resolvers/cdc.ts';

/** The `changes` field's node of a one-field subscription, as `info.fieldNodes` holds it. */
function infoOf(query: string): { fieldNodes: readonly FieldNode[] } {
  const operation = parse(query).definitions[0] as OperationDefinitionNode;
  return { fieldNodes: [operation.selectionSet.selections[0] as FieldNode] };
}

describe('the parsed filter of a changes field', () => {
  it('is parsed once for a filter written inline, whatever object GraphQL built at each resolve', () => {
    const info = infoOf('subscription { changes(model: "shop.orders", filter: {status: "eq.active", n: "in.(1,2)"}) { id } }');
    const first = parsedFilterFor(info, { status: 'eq.active', n: 'in.(1,2)' });
    expect(parsedFilterFor(info, { status: 'eq.active', n: 'in.(1,2)' })).toBe(first);
    expect(first.clauses.map((clause) => clause.column)).toEqual(['status', 'n']);
  });

  it('is parsed once per value for a written filter holding a variable, and apart for another value', () => {
    const info = infoOf('subscription($s: String) { changes(model: "shop.orders", filter: {status: $s, n: "in.(1,2)"}) { id } }');
    const active = parsedFilterFor(info, { status: 'eq.active', n: 'in.(1,2)' });
    expect(parsedFilterFor(info, { status: 'eq.active', n: 'in.(1,2)' })).toBe(active);
    const lead = parsedFilterFor(info, { status: 'eq.lead', n: 'in.(1,2)' });
    expect(lead).not.toBe(active);
    expect(lead.clauses[0]).toMatchObject({ column: 'status' });
  });

  it('is parsed once per argument object for a filter passed as a variable', () => {
    const info = infoOf('subscription($f: JSON) { changes(model: "shop.orders", filter: $f) { id } }');
    const argument = { status: 'eq.active' };
    expect(parsedFilterFor(info, argument)).toBe(parsedFilterFor(info, argument));
  });
});
