import type { ChannelMember as ChannelMemberShape, ChannelMessage as ChannelMessageShape, PresenceList } from '../../pipeline/channels/channel-hub.ts';
import { memberOf } from '../../pipeline/channels/channel-message.ts';
import * as resolvers from '../../resolvers/channels.ts';
import { builder } from '../builder.ts';

const channelName = 'A channel: 1–200 letters, digits and _ . : / -, starting with a letter or digit (BAD_USER_INPUT otherwise).';

const ChannelMember = builder.objectRef<ChannelMemberShape>('ChannelMember').implement({
  description: 'A member of a channel: one `channel` subscription, while it lasts.',
  fields: (t) => ({
    id: t.exposeString('id', { description: 'Opaque, unique per membership (one socket may join a channel twice): pairs a `presence.left` with its `presence.joined`.' }),
    subject: t.exposeString('subject', { description: "The member's subject (its token's `sub`)." }),
    connectionId: t.exposeString('connectionId', { nullable: true, description: "The socket it joined on (its gateway events' `connectionId`)." }),
    joinedAt: t.field({ type: 'DateTime', description: 'When it joined.', resolve: (member) => new Date(member.joinedAt) }),
  }),
});

const ChannelMembers = builder.objectRef<PresenceList & { readonly channel: string }>('ChannelMembers').implement({
  description: 'Who is in a channel now, on every instance.',
  fields: (t) => ({
    channel: t.exposeString('channel', { description: 'The channel.' }),
    count: t.exposeInt('count', { description: 'Members listed now (a channel lists at most 1,000).' }),
    members: t.field({ type: [ChannelMember], description: 'The first `first` of them, in the order they joined.', resolve: (list) => list.members }),
  }),
});

const ChannelMessage = builder.objectRef<ChannelMessageShape>('ChannelMessage').implement({
  description:
    'A raw broadcast on a channel: delivered to current members, not logged, not resumable. Or, to a member that joined with `presence: true`, a presence message: event `presence.joined` or `presence.left`, the member in `member` (and in `data`).',
  fields: (t) => ({
    channel: t.exposeString('channel', { description: 'The channel it was sent on.' }),
    event: t.exposeString('event', { description: 'The name the broadcaster gave it, or `presence.joined` / `presence.left`.' }),
    data: t.field({
      type: 'JSON',
      nullable: true,
      description: 'What the broadcaster sent (null when it sent none); for a presence message, the member.',
      resolve: (message) => message.data,
    }),
    member: t.field({
      type: ChannelMember,
      nullable: true,
      description: 'The member who joined or left, for a presence message; null for a broadcast.',
      resolve: (message) => memberOf(message) ?? null,
    }),
  }),
});

builder.queryField('channelMembers', (t) =>
  t.field({
    type: ChannelMembers,
    description:
      "Who is in `channel` of the caller's scope now (every instance's members; those of an instance that stopped answering drop out within 3 dashboard ticks): the first `first` (default 100, at most 1,000) in the order they joined, and how many. Needs the permission `<prefix>.join` for a dot-prefix of the channel (FORBIDDEN otherwise).",
    args: {
      channel: t.arg.string({ required: true, description: channelName }),
      first: t.arg.int({ description: 'At most this many members: 0–1,000, default 100.' }),
    },
    resolve: (_root, args, context) => resolvers.channelMembers(context, args),
  }),
);

builder.mutationField('broadcast', (t) =>
  t.boolean({
    nullable: true,
    description:
      "Sends `event` with `data` to the members of `channel` in the caller's scope. Needs the permission `<prefix>.broadcast` for a dot-prefix of the channel (FORBIDDEN otherwise). Events named `presence.…` are Tributary's (BAD_USER_INPUT).",
    args: {
      channel: t.arg.string({ required: true, description: channelName }),
      event: t.arg.string({
        required: true,
        description: "The event's name (`typing`, say): 1–200 letters, digits and _ . : / -, starting with a letter or digit; not `presence.…`.",
      }),
      data: t.arg({ type: 'JSON', description: 'Any JSON value, of at most EVENT_MAX_PAYLOAD_BYTES (64 KiB by default) as JSON; default null.' }),
    },
    resolve: (_root, args, context) => resolvers.broadcast(context, args),
  }),
);

builder.subscriptionField('channel', (t) =>
  t.field({
    type: ChannelMessage,
    description:
      "Joins a channel in the caller's scope: at most once, nothing kept. Needs the permission `<prefix>.join` for a dot-prefix of the channel (FORBIDDEN otherwise); a refreshed token without it ends the membership (PERMISSION_REVOKED). The member is listed in `channelMembers` while it stays; with `presence: true` it also receives `presence.joined` / `presence.left` messages (its own join first).",
    args: {
      name: t.arg.string({ required: true, description: channelName }),
      presence: t.arg.boolean({ defaultValue: false, description: 'Receive presence messages (`presence.joined`, `presence.left`) besides broadcasts.' }),
    },
    subscribe: (_root, args, context) => resolvers.joinChannel(context, args.name, args.presence ?? false),
    resolve: (message) => message,
  }),
);
