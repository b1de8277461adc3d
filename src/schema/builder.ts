import SchemaBuilder from '@pothos/core';
import type { GraphQLContext } from './context.ts';
import type { JsonValue } from './json.ts';

/** The one Pothos builder. Types live in `types/`, one file each, with their root fields. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: {
    JSON: { Input: JsonValue; Output: unknown };
    DateTime: { Input: Date; Output: Date };
  };
  DefaultFieldNullability: false;
}>({
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
