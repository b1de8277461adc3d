import { isAdmin, type Principal } from './principal.ts';

/**
 * The one access rule for topics. A permission `<prefix>.read` lets its holder read the topic
 * `<prefix>` and every topic below it (`<prefix>.…`); `<prefix>.publish` likewise for publishing.
 * So `crm.contacts.read` (seed 004's `{module}.{model}.read`) covers `crm.contacts.changed`,
 * `sync.orders.read` covers `sync.orders.updated`. `<prefix>.write` covers changing the sync
 * documents of a service (`sync.orders.write`). Role `admin` may do everything everywhere.
 * Scope (app, env, tenant) is not decided here: it comes from the token and is part of every key.
 */
export type TopicAction = 'read' | 'publish' | 'write';

export function canAccessTopic(principal: Principal, action: TopicAction, topic: string): boolean {
  if (isAdmin(principal)) return true;
  const suffix = `.${action}`;
  for (const permission of principal.permissions) {
    if (!permission.endsWith(suffix)) continue;
    const prefix = permission.slice(0, -suffix.length);
    if (prefix.length > 0 && (topic === prefix || topic.startsWith(`${prefix}.`))) return true;
  }
  return false;
}
