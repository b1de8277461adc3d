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

builder.queryType({ description: "Reads, in the caller's scope: the app, env and tenant of its token." });
// Every Mutation field says `nullable: true` (Pothos has no default per type): a field refused is
// null on its own, where a non-null one would null all of `data` — and with it what the fields
// before it did (an endpoint's secret shown once, an event's id), inviting a retry that does it twice.
builder.mutationType({
  description:
    "Writes, in the caller's scope: the app, env and tenant of its token. Several in one request run one after another, each on its own: one refused is null, its error in `errors`, and the others keep their answers.",
});
builder.subscriptionType({
  description: "Live streams, in the caller's scope: the app, env and tenant of its token. WebSocket only (graphql-ws); over HTTP: WEBSOCKET_ONLY.",
});
