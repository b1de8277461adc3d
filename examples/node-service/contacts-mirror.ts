/**
 * A Node service reacting to model changes — seed 004's "manual subscription (server-to-server)":
 * `subscribeModel` from @tributary/client hands every change of `contacts` to an awaited handler,
 * one at a time, in order, resumed from the last change handled after a dropped connection.
 *
 * Here the handler keeps a mirror of the tenant's contacts (think: a search index, a cache); a real
 * service would write to its own store. (With a filter, a row updated so that it no longer matches
 * arrives as LEFT: the mirror drops it like a delete.) Run it against a server:
 *
 *   TRIBUTARY_WS_URL=ws://127.0.0.1:4000/graphql TRIBUTARY_TOKEN=<JWT with crm.contacts.read> \
 *     node examples/node-service/contacts-mirror.ts
 */
import { fileURLToPath } from 'node:url';
import { subscribeModel, type ModelChangeEvent, type ModelSubscription } from '@tributary/client';

export interface ContactsMirrorOptions {
  /** `ws://host:4000/graphql` */
  readonly url: string;
  /** The service's token (read again at every reconnect: return the current one). */
  readonly token: () => string | Promise<string>;
  /** Each change after it was applied to the mirror (logging, metrics, tests). */
  readonly onApplied?: (change: ModelChangeEvent) => void;
  readonly onError?: (error: unknown) => void;
}

export interface ContactsMirror {
  /** Contacts by id: name. */
  readonly names: ReadonlyMap<string, string>;
  readonly subscription: ModelSubscription;
}

export function startContactsMirror(options: ContactsMirrorOptions): ContactsMirror {
  const names = new Map<string, string>();
  const subscription = subscribeModel({
    url: options.url,
    token: options.token,
    model: 'contacts',
    // Awaited: the next change waits for this one (per-entity order holds in the mirror).
    onChange: async (change) => {
      if (change.operation === 'DELETED' || change.record === null) names.delete(change.id);
      else names.set(change.id, String(change.record['name']));
      await Promise.resolve(); // a real service awaits its store here
      options.onApplied?.(change);
    },
    // The history could not be resumed (slot recreated, log expired): rebuild from the source of
    // truth. This example only starts over; a real service re-reads `records`.
    onResync: () => names.clear(),
    ...(options.onError && { onError: options.onError }),
  });
  return { names, subscription };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const url = process.env['TRIBUTARY_WS_URL'] ?? 'ws://127.0.0.1:4000/graphql';
  const token = process.env['TRIBUTARY_TOKEN'] ?? '';
  const mirror = startContactsMirror({
    url,
    token: () => token,
    onApplied: (change) => process.stdout.write(`${change.operation} ${change.id}: ${mirror.names.size} contacts\n`),
    onError: (error) => process.stderr.write(`${String(error)}\n`),
  });
  process.once('SIGINT', () => mirror.subscription.close());
  process.once('SIGTERM', () => mirror.subscription.close());
}
