/**
 * Apollo Client against Tributary: queries and mutations over HTTP (`HttpLink`), subscriptions
 * over graphql-ws (`GraphQLWsLink`), chosen per operation by a split link — Apollo's documented
 * setup, unchanged. The token goes in the `authorization` header over HTTP and in
 * `connection_init` over the socket.
 *
 * `watchContacts` is the race-free pattern for a model: read `records` (its `cursor` is a stream
 * position consistent with the rows), then subscribe to `changes(after: cursor)` — every change
 * the rows do not contain arrives, none they already reflect.
 */
import { ApolloClient, HttpLink, InMemoryCache, split, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { Kind, OperationTypeNode } from 'graphql';
import { createClient } from 'graphql-ws';

export interface ApolloExampleOptions {
  /** `http://host:4000/graphql` */
  readonly httpUrl: string;
  /** `ws://host:4000/graphql` */
  readonly wsUrl: string;
  /** A JWT (here with `crm.contacts.read`). */
  readonly token: string;
}

export type Contact = { readonly id: number; readonly name: string; readonly status: string | null };

export const CONTACTS = gql`
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

export const CONTACT_CHANGES = gql`
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

export interface ContactsData {
  readonly records: { readonly cursor: string; readonly nodes: readonly { readonly id: string; readonly record: Contact }[] };
}

export interface ContactChange {
  readonly eventId: string;
  /** LEFT (with a filter): the row no longer matches; its record is null. */
  readonly operation: 'CREATED' | 'UPDATED' | 'DELETED' | 'LEFT';
  readonly id: string;
  readonly record: Contact | null;
  readonly cursor: string;
}

export interface ApolloExample {
  readonly client: ApolloClient;
  /** Stops the client and closes its socket. */
  close(): Promise<void>;
}

export function createApolloClient({ httpUrl, wsUrl, token }: ApolloExampleOptions): ApolloExample {
  const http = new HttpLink({ uri: httpUrl, headers: { authorization: `Bearer ${token}` } });
  const socket = createClient({ url: wsUrl, connectionParams: { authorization: `Bearer ${token}` } });
  const ws = new GraphQLWsLink(socket);
  const link = split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === Kind.OPERATION_DEFINITION && definition.operation === OperationTypeNode.SUBSCRIPTION;
    },
    ws,
    http,
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return {
    client,
    close: async () => {
      client.stop();
      await socket.dispose();
    },
  };
}

export interface ContactsWatch {
  /** The contacts now, by id: the snapshot, then every change applied. */
  readonly contacts: ReadonlyMap<string, Contact>;
  stop(): void;
}

/** The contacts (matching `filter`), kept current; `onChange` after each change applied. */
export async function watchContacts(client: ApolloClient, filter: Record<string, string> | null, onChange: (change: ContactChange) => void): Promise<ContactsWatch> {
  const { data } = await client.query<ContactsData>({ query: CONTACTS, variables: { filter }, fetchPolicy: 'network-only' });
  if (!data) throw new Error('records: no data');
  const contacts = new Map(data.records.nodes.map((node) => [node.id, node.record]));
  // A reconnecting graphql-ws client re-sends these variables (the first cursor): where a gap
  // matters, subscribe again with the last change's cursor (see examples/README.md).
  const subscription = client.subscribe<{ changes: ContactChange }>({ query: CONTACT_CHANGES, variables: { filter, after: data.records.cursor } }).subscribe({
    next: ({ data: message }) => {
      if (!message) return;
      const change = message.changes;
      if (change.operation === 'DELETED' || change.record === null) contacts.delete(change.id);
      else contacts.set(change.id, change.record);
      onChange(change);
    },
  });
  return { contacts, stop: () => subscription.unsubscribe() };
}
