import type { Principal } from '../../auth/principal.ts';
import * as resolvers from '../../resolvers/viewer.ts';
import { builder } from '../builder.ts';

const Viewer = builder.objectRef<Principal>('Viewer').implement({
  description: 'The caller, as established by its verified token.',
  fields: (t) => ({
    subject: t.exposeString('subject', { description: "The token's `sub`." }),
    app: t.exposeString('app', { description: "The application it belongs to (the token's `app`)." }),
    env: t.exposeString('env', { description: "The application's environment it belongs to (the token's `env`)." }),
    tenant: t.exposeString('tenant', { nullable: true, description: 'Null for application-wide principals.' }),
    roles: t.exposeStringList('roles', { description: "The token's roles; `admin` unlocks the admin operations." }),
    permissions: t.exposeStringList('permissions', { description: 'e.g. `crm.contacts.read`' }),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the token expires; a socket authenticated with it is closed then (4419), unless it is handed a new token with `refreshAuth`.',
      resolve: (principal) => (principal.expiresAt === undefined ? null : new Date(principal.expiresAt)),
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({
    type: Viewer,
    description: "The caller's principal.",
    resolve: (_root, _args, context) => resolvers.viewer(context),
  }),
);
