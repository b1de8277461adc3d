import type { ResolverContext } from '../resolvers/context.ts';

/** How the operation arrived; subscriptions are served over WebSocket only. */
export type Transport = 'http' | 'ws';

export interface GraphQLContext extends ResolverContext {
  readonly transport: Transport;
}
