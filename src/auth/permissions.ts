import { isAdmin, type Principal } from './principal.ts';

/**
 * The one access rule, for topics and channels alike. A permission `<prefix>.<action>` lets its
 * holder do `<action>` on the name `<prefix>` and on every name below it (`<prefix>.…`). So
 * `crm.contacts.read` (seed 004's `{module}.{model}.read`) covers the topic
 * `crm.contacts.changed`, `sync.orders.read` covers `sync.orders.updated`, and `chat.join` covers
 * the channels `chat` and `chat.room-7`. Role `admin` may do everything everywhere.
 * Scope (app, env, tenant) is not decided here: it comes from the token and is part of every key.
 */
export type TopicAction = 'read' | 'publish' | 'write';

/** `join` a channel (its `subscription channel`), `broadcast` to it. */
export type ChannelAction = 'join' | 'broadcast';

/**
 * Topics: `<prefix>.read` to read, `<prefix>.publish` to publish, `<prefix>.write` to change the
 * sync documents of a service (`sync.orders.write`).
 */
export function canAccessTopic(principal: Principal, action: TopicAction, topic: string): boolean {
  return holdsPermission(principal, action, topic);
}

/** Channels: `<prefix>.join` to join, `<prefix>.broadcast` to broadcast. */
export function canAccessChannel(principal: Principal, action: ChannelAction, channel: string): boolean {
  return holdsPermission(principal, action, channel);
}

function holdsPermission(principal: Principal, action: TopicAction | ChannelAction, name: string): boolean {
  if (isAdmin(principal)) return true;
  const suffix = `.${action}`;
  for (const permission of principal.permissions) {
    if (!permission.endsWith(suffix)) continue;
    const prefix = permission.slice(0, -suffix.length);
    if (prefix.length > 0 && (name === prefix || name.startsWith(`${prefix}.`))) return true;
  }
  return false;
}
