/**
 * Apollo Client against Tributary: queries and mutations over HTTP (`HttpLink`), subscriptions
 * over graphql-ws (`GraphQLWsLink`), chosen per operation by a split link — Apollo's documented
 * setup, unchanged. The token goes in the `authorization` header over HTTP and in
 * `connection_init` over the socket.
 *
 * `watchContacts` is the race-free pattern for a model (the README's "Model snapshots"): read every
 * page of `records` (`after: pageInfo.endCursor` while `hasNextPage`), then subscribe to `changes`
 * with the same filter and `after:` the listing's `cursor` (a stream position consistent with the
 * rows, the same on every page — not a page's `endCursor`): every change the rows do not contain
 * arrives, none they already reflect.
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
  query Contacts($filter: JSON, $first: Int, $after: String) {
    records(model: "contacts", filter: $filter, first: $first, after: $after) {
      cursor
      nodes {
        id
        record
      }
      pageInfo {
        endCursor
        hasNextPage
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
      unchangedColumns
      cursor
    }
  }
`;

export interface ContactsData {
  readonly records: {
    readonly cursor: string;
    readonly nodes: readonly { readonly id: string; readonly record: Contact }[];
    readonly pageInfo: { readonly endCursor: string | null; readonly hasNextPage: boolean };
  };
}

/** Rows per `records` page (the server takes 1–1,000; 100 is its default). */
export const PAGE_SIZE = 100;

export interface ContactChange {
  readonly eventId: string;
  /** LEFT (with a filter): the row no longer matches; its record is null. */
  readonly operation: 'CREATED' | 'UPDATED' | 'DELETED' | 'LEFT';
  readonly id: string;
  readonly record: Contact | null;
  /**
   * Columns `record` lacks: Postgres does not send a large (TOASTed) value an update left
   * unchanged unless the table has REPLICA IDENTITY FULL. Keep the value you hold.
   */
  readonly unchangedColumns: readonly string[];
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
  const { contacts, cursor } = await readContacts(client, filter);
  // A reconnecting graphql-ws client re-sends these variables (the listing's cursor): the server
  // replays every change since the listing. To resume from the last change instead, subscribe
  // again with its cursor (see examples/README.md).
  const subscription = client.subscribe<{ changes: ContactChange }>({ query: CONTACT_CHANGES, variables: { filter, after: cursor } }).subscribe({
    next: ({ data: message }) => {
      if (!message) return;
      const change = message.changes;
      if (applyChange(contacts, change)) onChange(change);
    },
  });
  return { contacts, stop: () => subscription.unsubscribe() };
}

/**
 * Applies a change to the contacts held; false when it is left out. An update is merged into the
 * row held, not put in its place: its record lacks the `unchangedColumns`, whose values are the
 * ones held. An update of a row not held that lacks columns cannot be held whole: left out (with
 * a filter, the server could not judge it, and an update that left the filtered column as it was
 * cannot have brought the row into the filter).
 */
function applyChange(contacts: Map<string, Contact>, change: ContactChange): boolean {
  if (change.operation === 'DELETED' || change.record === null) {
    contacts.delete(change.id);
    return true;
  }
  const held = contacts.get(change.id);
  if (change.operation === 'UPDATED' && held === undefined && change.unchangedColumns.length > 0) return false;
  contacts.set(change.id, change.operation === 'UPDATED' ? { ...held, ...change.record } : change.record);
  return true;
}

/** Every page of `records`, keyed by id, and the listing's `cursor`. */
async function readContacts(client: ApolloClient, filter: Record<string, string> | null): Promise<{ contacts: Map<string, Contact>; cursor: string }> {
  const readPage = async (after: string | null): Promise<ContactsData['records']> => {
    const { data } = await client.query<ContactsData>({ query: CONTACTS, variables: { filter, first: PAGE_SIZE, after }, fetchPolicy: 'network-only' });
    if (!data) throw new Error('records: no data');
    return data.records;
  };
  const contacts = new Map<string, Contact>();
  let page = await readPage(null);
  // The first page's: the same on every page of one listing, and where its snapshot was taken.
  const { cursor } = page;
  for (;;) {
    for (const node of page.nodes) contacts.set(node.id, node.record);
    // A page reads a bounded number of rows: with a selective filter it may hold none and still
    // have a next page, so only `hasNextPage` ends the listing.
    if (!page.pageInfo.hasNextPage || page.pageInfo.endCursor === null) break;
    page = await readPage(page.pageInfo.endCursor);
  }
  return { contacts, cursor };
}
