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
builder.mutationType({ description: "Writes, in the caller's scope: the app, env and tenant of its token." });
builder.subscriptionType({
  description: "Live streams, in the caller's scope: the app, env and tenant of its token. WebSocket only (graphql-ws); over HTTP: WEBSOCKET_ONLY.",
});
