import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.ts';
import './scalars.ts';
import './types/viewer.ts';
import './types/auth.ts';
import './types/channel.ts';
import './types/event.ts';
import './types/document.ts';
import './types/cdc.ts';
import './types/records.ts';
import './types/outbox.ts';
import './types/webhooks.ts';
import './types/alerts.ts';
import './types/analytics.ts';
import './types/dashboard.ts';

export type { GraphQLContext } from './context.ts';

let built: GraphQLSchema | undefined;

/** The executable schema (built once). */
export function getSchema(): GraphQLSchema {
  built ??= builder.toSchema({ sortSchema: true });
  return built;
}

/** The SDL committed as `schema.graphql`. */
export function printSchemaSdl(): string {
  return `${printSchema(lexicographicSortSchema(getSchema()))}\n`;
}
