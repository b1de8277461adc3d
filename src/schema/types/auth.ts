import type { AuthRefresh as AuthRefreshValue } from '../../resolvers/context.ts';
import * as resolvers from '../../resolvers/auth.ts';
import { builder } from '../builder.ts';

const AuthRefresh = builder.objectRef<AuthRefreshValue>('AuthRefresh').implement({
  description: 'What `refreshAuth` did to the socket it was sent on.',
  fields: (t) => ({
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true, description: "The socket's new expiry (the token's `exp`)." }),
    stoppedSubscriptions: t.exposeInt('stoppedSubscriptions', {
      description: 'Subscriptions the new token may no longer read: each ended with an `error` (FORBIDDEN, `reason: PERMISSION_REVOKED`).',
    }),
  }),
});

builder.mutationFields((t) => ({
  refreshAuth: t.field({
    type: AuthRefresh,
    nullable: true,
    description:
      "WebSocket only: hands the socket this mutation is sent on a new token (`Bearer` optional) of the same subject, tenant, app and env. Its expiry moves, and every subscription is checked against the new permissions (those no longer readable end with FORBIDDEN, `reason: PERMISSION_REVOKED`; the others go on untouched). A token that fails verification is UNAUTHENTICATED (the socket keeps its old token); another subject or tenant closes the socket with 4412. Over HTTP: WEBSOCKET_ONLY.",
    args: { token: t.arg.string({ required: true, description: 'The new JWT, with or without `Bearer `.' }) },
    resolve: (_root, args, context) => resolvers.refreshAuth(context, args.token),
  }),
}));
