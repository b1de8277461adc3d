import type { ChannelMessage as ChannelMessageShape } from '../../pipeline/channels/channel-hub.ts';
import * as resolvers from '../../resolvers/channels.ts';
import { builder } from '../builder.ts';

const ChannelMessage = builder.objectRef<ChannelMessageShape>('ChannelMessage').implement({
  description: 'A raw broadcast on a channel: delivered to current members, not logged, not resumable.',
  fields: (t) => ({
    channel: t.exposeString('channel'),
    event: t.exposeString('event'),
    data: t.field({ type: 'JSON', nullable: true, resolve: (message) => message.data }),
  }),
});

builder.mutationField('broadcast', (t) =>
  t.boolean({
    description: "Sends `event` with `data` to the members of `channel` in the caller's scope. Needs the permission `<prefix>.broadcast` for a dot-prefix of the channel (FORBIDDEN otherwise).",
    args: {
      channel: t.arg.string({ required: true }),
      event: t.arg.string({ required: true }),
      data: t.arg({ type: 'JSON' }),
    },
    resolve: (_root, args, context) => resolvers.broadcast(context, args),
  }),
);

builder.subscriptionField('channel', (t) =>
  t.field({
    type: ChannelMessage,
    description: "Joins a channel in the caller's scope: at most once, nothing kept. Needs the permission `<prefix>.join` for a dot-prefix of the channel (FORBIDDEN otherwise); a refreshed token without it ends the membership (PERMISSION_REVOKED).",
    args: { name: t.arg.string({ required: true }) },
    subscribe: (_root, args, context) => resolvers.joinChannel(context, args.name),
    resolve: (message) => message,
  }),
);
