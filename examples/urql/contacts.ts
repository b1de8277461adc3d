/**
 * urql against Tributary: queries over HTTP (`fetchExchange`), subscriptions over graphql-ws
 * (`subscriptionExchange`) — urql's documented setup, unchanged. The token goes in the
 * `authorization` header over HTTP and in `connection_init` over the socket.
 *
 * `watchContacts` reads `records`, then subscribes to `changes(after: records.cursor)`: every
 * change the rows do not contain arrives, none they already reflect.
 */
import { Client, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient } from 'graphql-ws';

export interface UrqlExampleOptions {
  /** `http://host:4000/graphql` */
  readonly httpUrl: string;
  /** `ws://host:4000/graphql` */
  readonly wsUrl: string;
  /** A JWT (here with `crm.contacts.read`). */
  readonly token: string;
}

export type Contact = { readonly id: number; readonly name: string; readonly status: string | null };

export interface ContactChange {
  readonly eventId: string;
  /** LEFT (with a filter): the row no longer matches; its record is null. */
  readonly operation: 'CREATED' | 'UPDATED' | 'DELETED' | 'LEFT';
  readonly id: string;
  readonly record: Contact | null;
  readonly cursor: string;
}

const CONTACTS = gql<{ records: { cursor: string; nodes: { id: string; record: Contact }[] } }, { filter: Record<string, string> | null }>`
  query Contacts($filter: JSON) {
    records(model: "contacts", filter: $filter) {
      cursor
      nodes {
        id
        record
      }
    }
  }
`;

const CONTACT_CHANGES = gql<{ changes: ContactChange }, { filter: Record<string, string> | null; after: string }>`
  subscription ContactChanges($filter: JSON, $after: String) {
    changes(model: "contacts", filter: $filter, after: $after) {
      eventId
      operation
      id
      record
      cursor
    }
  }
`;

export interface UrqlExample {
  readonly client: Client;
  /** Closes the socket. */
  close(): Promise<void>;
}

export function createUrqlClient({ httpUrl, wsUrl, token }: UrqlExampleOptions): UrqlExample {
  const socket = createClient({ url: wsUrl, connectionParams: { authorization: `Bearer ${token}` } });
  const client = new Client({
    url: httpUrl,
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              return { unsubscribe: socket.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  return { client, close: () => Promise.resolve(socket.dispose()) };
}

export interface ContactsWatch {
  /** The contacts now, by id: the snapshot, then every change applied. */
  readonly contacts: ReadonlyMap<string, Contact>;
  stop(): void;
}

/** The contacts (matching `filter`), kept current; `onChange` after each change applied. */
export async function watchContacts(client: Client, filter: Record<string, string> | null, onChange: (change: ContactChange) => void): Promise<ContactsWatch> {
  const result = await client.query(CONTACTS, { filter }, { requestPolicy: 'network-only' }).toPromise();
  if (result.error || !result.data) throw result.error ?? new Error('records: no data');
  const contacts = new Map(result.data.records.nodes.map((node) => [node.id, node.record]));
  const subscription = client.subscription(CONTACT_CHANGES, { filter, after: result.data.records.cursor }).subscribe(({ data }) => {
    if (!data) return;
    const change = data.changes;
    if (change.operation === 'DELETED' || change.record === null) contacts.delete(change.id);
    else contacts.set(change.id, change.record);
    onChange(change);
  });
  return { contacts, stop: () => subscription.unsubscribe() };
}
