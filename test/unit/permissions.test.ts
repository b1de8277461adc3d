import { describe, expect, it } from 'vitest';
import { canAccessChannel, canAccessTopic } from '../../src/auth/permissions.ts';
import type { Principal } from '../../src/auth/principal.ts';

function principal(permissions: readonly string[], roles: readonly string[] = []): Principal {
  return { subject: 'user-1', app: 'shop', env: 'prod', tenant: 'tenant-a', roles, permissions, expiresAt: undefined };
}

describe('the access rule', () => {
  it('lets <prefix>.<action> act on the prefix itself and on dot-names below it, nothing else', () => {
    const holder = principal(['chat.join', 'crm.contacts.read']);
    expect(['chat', 'chat.room-7', 'chat.a.b'].map((name) => canAccessChannel(holder, 'join', name))).toEqual([true, true, true]);
    expect(['chatter', 'chat:1', 'chat/1', 'ch', 'other.chat'].map((name) => canAccessChannel(holder, 'join', name))).toEqual([false, false, false, false, false]);
    expect(canAccessTopic(holder, 'read', 'crm.contacts.changed')).toBe(true);
    expect(canAccessTopic(holder, 'read', 'crm.contactsx')).toBe(false);
  });

  it('keeps the actions apart: join is not broadcast, a channel action is not a topic action', () => {
    const holder = principal(['chat.join', 'news.read']);
    expect(canAccessChannel(holder, 'broadcast', 'chat.room-7')).toBe(false);
    expect(canAccessTopic(holder, 'read', 'chat.room-7')).toBe(false);
    expect(canAccessChannel(holder, 'join', 'news')).toBe(false);
  });

  it('gives nothing to an empty prefix, and everything to role admin', () => {
    expect(canAccessChannel(principal(['.join']), 'join', 'chat')).toBe(false);
    expect(canAccessChannel(principal([], ['admin']), 'broadcast', 'anything.at.all')).toBe(true);
  });
});
