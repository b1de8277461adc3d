/**
 * A bound on how often one field (one response name) is selected in one selection set, fragments
 * included. graphql-js's check that such fields can be merged compares them pairwise: `viewer {
 * subject }` 495 times — 10 KB, within the token limit — cost 171 ms of validation against 7 ms
 * for a plain query, on the event loop every tenant shares, and a new comment in each request
 * defeats the parse cache. No real query repeats a field more than a few times (colocated
 * fragments each selecting `id`, say), so the bound is far above them and keeps the comparisons
 * to a few thousand.
 */
import { BREAK, GraphQLError, Kind, visit, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import { ErrorCode } from '../errors.ts';

/** Most selections of one response name in one selection set, its fragments' included. */
export const MAX_FIELD_REPEATS = 50;

/** Documents already looked at, with their refusal (null when none): yoga caches parsed documents by text. */
const checked = new WeakMap<DocumentNode, GraphQLError | null>();

/** The error for a field selected more than MAX_FIELD_REPEATS times in one selection set, or undefined. */
export function fieldRepeatedTooOften(document: DocumentNode): GraphQLError | undefined {
  const known = checked.get(document);
  if (known !== undefined) return known ?? undefined;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  /** Each fragment's top-level counts by response name, its own spreads and inline fragments flattened in. */
  const fragmentCounts = new Map<string, ReadonlyMap<string, number>>();
  const expanding = new Set<string>();

  const countsOf = (selectionSet: SelectionSetNode): Map<string, number> => {
    const counts = new Map<string, number>();
    const add = (name: string, times: number) => counts.set(name, (counts.get(name) ?? 0) + times);
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) add((selection.alias ?? selection.name).value, 1);
      else if (selection.kind === Kind.INLINE_FRAGMENT) for (const [name, times] of countsOf(selection.selectionSet)) add(name, times);
      else for (const [name, times] of spreadCounts(selection.name.value)) add(name, times);
    }
    return counts;
  };
  const spreadCounts = (fragment: string): ReadonlyMap<string, number> => {
    const known = fragmentCounts.get(fragment);
    if (known) return known;
    const definition = fragments.get(fragment);
    // Unknown or cyclic: graphql-js's own rules refuse it; nothing to count here.
    if (!definition || expanding.has(fragment)) return new Map();
    expanding.add(fragment);
    const counts = countsOf(definition.selectionSet);
    expanding.delete(fragment);
    fragmentCounts.set(fragment, counts);
    return counts;
  };

  let refused: GraphQLError | null = null;
  // Every selection set once (a fragment's in its definition), with what its spreads bring in.
  visit(document, {
    SelectionSet(node) {
      for (const [name, times] of countsOf(node)) {
        if (times <= MAX_FIELD_REPEATS) continue;
        refused = new GraphQLError(`Field "${name}" is selected ${times} times in one selection set (at most ${MAX_FIELD_REPEATS}, its fragments' included)`, {
          nodes: node,
          extensions: { code: ErrorCode.QUERY_TOO_COMPLEX, http: { status: 400 } },
        });
        return BREAK;
      }
      return undefined;
    },
  });
  checked.set(document, refused);
  return refused ?? undefined;
}
