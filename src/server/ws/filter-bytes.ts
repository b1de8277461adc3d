import {
  getArgumentValues,
  getVariableValues,
  Kind,
  type DocumentNode,
  type FieldNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';

/**
 * The arguments of a subscription field that hold a filter every event is matched against:
 * `events(where:)` (`filters/event-filter.ts`) and `changes(filter:)` (`filters/model-filter.ts`).
 * Named here rather than per field, so a filtered subscription field added later is counted too.
 */
const FILTER_ARGUMENTS: readonly string[] = ['where', 'filter'];

/**
 * Bytes of the filters of a subscription's root field, as JSON (UTF-8) — as the bounds of one
 * filter measure its values — read from the field's arguments with the operation's variables;
 * 0 without a filter. Also 0 for variables or arguments the execution refuses anyway (with its
 * own message, before any filter is held).
 */
export function filterBytesOf(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  field: FieldNode | undefined,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): number {
  const definition = field && schema.getSubscriptionType()?.getFields()[field.name.value];
  if (!field || !definition || !definition.args.some((argument) => FILTER_ARGUMENTS.includes(argument.name))) return 0;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {});
  if (coerced.errors) return 0;
  let values: Record<string, unknown>;
  try {
    values = getArgumentValues(definition, field, coerced.coerced);
  } catch {
    return 0;
  }
  let bytes = 0;
  for (const name of FILTER_ARGUMENTS) {
    const value = values[name];
    if (value !== null && value !== undefined) bytes += Buffer.byteLength(JSON.stringify(value));
  }
  return bytes;
}

/**
 * The subscription's root field (validation allows exactly one), looked up through fragments:
 * `subscription { ...F }` is valid too.
 */
export function rootFieldOf(operation: OperationDefinitionNode, document: DocumentNode): FieldNode | undefined {
  let selections = operation.selectionSet.selections;
  // Bounded: each step descends one fragment level; a fragment cycle fails validation first.
  for (let depth = 0; depth < 100; depth += 1) {
    const selection = selections[0];
    if (selection === undefined) break;
    if (selection.kind === Kind.FIELD) return selection;
    if (selection.kind === Kind.INLINE_FRAGMENT) {
      selections = selection.selectionSet.selections;
      continue;
    }
    const fragment = document.definitions.find(
      (definition) => definition.kind === Kind.FRAGMENT_DEFINITION && definition.name.value === selection.name.value,
    );
    if (fragment?.kind !== Kind.FRAGMENT_DEFINITION) break;
    selections = fragment.selectionSet.selections;
  }
  return undefined;
}
