/**
 * urql against Tributary: queries over HTTP (`fetchExchange`), subscriptions over graphql-ws
 * (`subscriptionExchange`) — urql's documented setup, unchanged. The token goes in the
 * `authorization` header over HTTP and in `connection_init` over the socket.
 *
 * `watchContacts` reads every page of `records` (`after: pageInfo.endCursor` while `hasNextPage`),
 * then subscribes to `changes` with the same filter and `after:` the listing's `cursor` (the same
 * on every page — not a page's `endCursor`): every change the rows do not contain arrives, none
 * they already reflect (the README's "Model snapshots").
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
  /**
   * Columns `record` lacks: Postgres does not send a large (TOASTed) value an update left
   * unchanged unless the table has REPLICA IDENTITY FULL. Keep the value you hold.
   */
  readonly unchangedColumns: readonly string[];
  readonly cursor: string;
}

interface ContactsPage {
  readonly cursor: string;
  readonly nodes: readonly { readonly id: string; readonly record: Contact }[];
  readonly pageInfo: { readonly endCursor: string | null; readonly hasNextPage: boolean };
}

/** Rows per `records` page (the server takes 1–1,000; 100 is its default). */
export const PAGE_SIZE = 100;

const CONTACTS = gql<{ records: ContactsPage }, { filter: Record<string, string> | null; first: number; after: string | null }>`
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

const CONTACT_CHANGES = gql<{ changes: ContactChange }, { filter: Record<string, string> | null; after: string }>`
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
  const { contacts, cursor } = await readContacts(client, filter);
  const subscription = client.subscription(CONTACT_CHANGES, { filter, after: cursor }).subscribe(({ data }) => {
    if (!data) return;
    const change = data.changes;
    if (applyChange(contacts, change)) onChange(change);
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
async function readContacts(client: Client, filter: Record<string, string> | null): Promise<{ contacts: Map<string, Contact>; cursor: string }> {
  const readPage = async (after: string | null): Promise<ContactsPage> => {
    const result = await client.query(CONTACTS, { filter, first: PAGE_SIZE, after }, { requestPolicy: 'network-only' }).toPromise();
    if (result.error || !result.data) throw result.error ?? new Error('records: no data');
    return result.data.records;
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
