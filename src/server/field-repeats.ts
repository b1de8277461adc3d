/**
 * A bound on how often one field (one response name) is selected in one selection set, fragments
 * included. graphql-js's check that such fields can be merged compares them pairwise: `viewer {
 * subject }` 495 times — 10 KB, within the token limit — cost 171 ms of validation against 7 ms
 * for a plain query, on the event loop every tenant shares, and a new comment in each request
 * defeats the parse cache. Real queries repeat a field a few times — colocated fragments each
 * selecting `id`, and `__typename` that Apollo adds to every one — so the bound is well above them
 * and keeps the comparisons to a few thousand. The count itself is linear: each selection set and
 * fragment is counted once, a fragment spread many times in one set is merged in once, and
 * counting stops at the first name past the bound.
 */
import { GraphQLError, Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import { ErrorCode } from '../errors.ts';

/** Most selections of one response name in one selection set, its fragments' included. */
export const MAX_FIELD_REPEATS = 100;

/** Documents already looked at, with their refusal (null when none): yoga caches parsed documents by text. */
const checked = new WeakMap<DocumentNode, GraphQLError | null>();

/** Thrown inside the count at the first name past the bound: nothing more needs counting. */
class TooOften extends Error {
  readonly field: string;
  readonly node: SelectionSetNode;
  constructor(field: string, node: SelectionSetNode) {
    super(`"${field}" selected too often`);
    this.field = field;
    this.node = node;
  }
}

/** The error for a field selected more than MAX_FIELD_REPEATS times in one selection set, or undefined. */
export function fieldRepeatedTooOften(document: DocumentNode): GraphQLError | undefined {
  const known = checked.get(document);
  if (known !== undefined) return known ?? undefined;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  /** Each selection set's counts by response name, its spreads and inline fragments flattened in. */
  const counted = new Map<SelectionSetNode, ReadonlyMap<string, number>>();
  const expanding = new Set<string>();
  const none: ReadonlyMap<string, number> = new Map();

  const countsOf = (selectionSet: SelectionSetNode): ReadonlyMap<string, number> => {
    const known = counted.get(selectionSet);
    if (known) return known;
    const counts = new Map<string, number>();
    const add = (name: string, times: number) => {
      const total = (counts.get(name) ?? 0) + times;
      if (total > MAX_FIELD_REPEATS) throw new TooOften(name, selectionSet);
      counts.set(name, total);
    };
    /** Spreads by fragment: one spread many times is merged in once, its counts multiplied. */
    const spreads = new Map<string, number>();
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) add((selection.alias ?? selection.name).value, 1);
      else if (selection.kind === Kind.INLINE_FRAGMENT) {
        for (const [name, times] of countsOf(selection.selectionSet)) add(name, times);
      } else {
        spreads.set(selection.name.value, (spreads.get(selection.name.value) ?? 0) + 1);
      }
    }
    for (const [fragment, spread] of spreads) for (const [name, times] of spreadCounts(fragment)) add(name, times * spread);
    // A field's own selections are a set of their own, counted once this one passed.
    for (const selection of selectionSet.selections) if (selection.kind === Kind.FIELD && selection.selectionSet) countsOf(selection.selectionSet);
    counted.set(selectionSet, counts);
    return counts;
  };
  const spreadCounts = (fragment: string): ReadonlyMap<string, number> => {
    const definition = fragments.get(fragment);
    // Unknown or cyclic: graphql-js's own rules refuse it; nothing to count here.
    if (!definition || expanding.has(fragment)) return none;
    expanding.add(fragment);
    try {
      return countsOf(definition.selectionSet);
    } finally {
      expanding.delete(fragment);
    }
  };

  let refused: GraphQLError | null = null;
  try {
    for (const definition of document.definitions) {
      if (definition.kind === Kind.OPERATION_DEFINITION || definition.kind === Kind.FRAGMENT_DEFINITION) countsOf(definition.selectionSet);
    }
  } catch (error) {
    if (!(error instanceof TooOften)) throw error;
    refused = new GraphQLError(`Field "${error.field}" is selected more than ${MAX_FIELD_REPEATS} times in one selection set (its fragments' selections included)`, {
      nodes: error.node,
      extensions: { code: ErrorCode.QUERY_TOO_COMPLEX, http: { status: 400 } },
    });
  }
  checked.set(document, refused);
  return refused ?? undefined;
}
