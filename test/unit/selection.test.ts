/**
 * `selectsField`: whether a resolver's selection names a field, through fragments — each fragment
 * looked into once, so a query that spreads fragments 100 times at each of three levels under 100
 * merged root fields costs a walk of its own size, not 100⁴ steps (it stalled the event loop 5 s).
 */
import { Kind, parse, type FieldNode, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectsField } from '../../src/schema/selection.ts';

/** The root fields' nodes and the fragments of `query`, the fragments' reads counted. */
function infoOf(query: string) {
  const document = parse(query);
  const operation = document.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION)!;
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
  let reads = 0;
  const counted = new Proxy(fragments, {
    get(target, key: string) {
      reads += 1;
      return target[key];
    },
  });
  return { info: { fieldNodes: operation.selectionSet.selections as FieldNode[], fragments: counted }, reads: () => reads };
}

const spreads = (name: string, count: number) => Array.from({ length: count }, () => `...${name}`).join(' ');
const nested = (leaf: string) =>
  [
    `query { ${Array.from({ length: 100 }, () => 'documents(service: "s") { ...C }').join(' ')} }`,
    `fragment C on DocumentConnection { ${spreads('C1', 100)} }`,
    'fragment C1 on DocumentConnection { edges { ...E } }',
    `fragment E on DocumentEdge { ${spreads('E1', 100)} }`,
    'fragment E1 on DocumentEdge { node { ...N } }',
    `fragment N on Document { ${spreads('N1', 100)} }`,
    `fragment N1 on Document { ${leaf} }`,
  ].join('\n');

describe('selectsField', () => {
  it('reads each fragment once however often it is spread', () => {
    const { info, reads } = infoOf(nested('id'));
    expect(selectsField(info, 'data')).toBe(false);
    expect(reads()).toBe(6);
  });

  it('finds the field through fragments, inline fragments and nested fields', () => {
    expect(selectsField(infoOf(nested('id data')).info, 'data')).toBe(true);
    expect(selectsField(infoOf('query { documents(service: "s") { edges { node { ... on Document { data } } } } }').info, 'data')).toBe(true);
    expect(selectsField(infoOf('query { documents(service: "s") { edges { node { id revision } } pageInfo { hasNextPage } } }').info, 'data')).toBe(false);
    // A spread of a fragment the operation lacks (validation refuses it first) finds nothing.
    expect(selectsField(infoOf('query { documents(service: "s") { ...Missing } }').info, 'data')).toBe(false);
  });
});
