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
 * arrives, none they already reflect. When the stream ends with an error — RESYNC_REQUIRED after a
 * TRUNCATE or lost history — the error is told (`onError`), the contacts are listed again and the
 * stream followed from the new listing's cursor; changes are applied once each, by `eventId`.
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
  /** The contacts now, by id: the snapshot, then every change applied (the same map after a new listing). */
  readonly contacts: ReadonlyMap<string, Contact>;
  stop(): void;
}

export interface WatchOptions {
  /**
   * The stream ended with an error — RESYNC_REQUIRED (the history it would resume from is gone: a
   * TRUNCATE, a replication slot recreated), FORBIDDEN, a socket graphql-ws gave up on — and the
   * contacts are listed again, the stream followed from the new listing; or that listing failed,
   * and the watch stopped.
   */
  readonly onError?: (error: unknown) => void;
}

/** Event ids remembered to apply each change once (delivery is at least once). */
const SEEN_EVENTS = 10_000;
/** Longest pause before listing again when the stream keeps failing with nothing delivered, in ms. */
const MAX_PAUSE_MS = 30_000;

/** The contacts (matching `filter`), kept current; `onChange` after each change applied. */
export async function watchContacts(
  client: ApolloClient,
  filter: Record<string, string> | null,
  onChange: (change: ContactChange) => void,
  options: WatchOptions = {},
): Promise<ContactsWatch> {
  const contacts = new Map<string, Contact>();
  const seen = new Set<string>();
  let stopped = false;
  let subscription: { unsubscribe(): void } | undefined;
  let pauseTimer: ReturnType<typeof setTimeout> | undefined;
  /** Failures in a row with no change delivered: each waits longer before the next listing. */
  let failures = 0;

  // A reconnecting graphql-ws client re-sends these variables (this listing's cursor): the server
  // replays every change since the listing. To resume from the last change instead, subscribe
  // again with its cursor (see examples/README.md).
  const follow = (after: string) => {
    let ended = false;
    subscription = client.subscribe<{ changes: ContactChange }>({ query: CONTACT_CHANGES, variables: { filter, after } }).subscribe({
      // Apollo Client 4 hands a subscription's error over as a result with `error` (and no data).
      next: ({ data, error }) => {
        if (ended) return;
        if (error) {
          ended = true;
          restart(error);
          return;
        }
        if (!data) return;
        const change = data.changes;
        failures = 0;
        if (!firstDelivery(seen, change.eventId)) return;
        if (applyChange(contacts, change)) onChange(change);
      },
      error: (error: unknown) => {
        if (ended) return;
        ended = true;
        restart(error);
      },
    });
  };
  /** Every page again, the contacts replaced at once, then the stream from the new listing's cursor. */
  const load = async () => {
    const listing = await readContacts(client, filter);
    if (stopped) return;
    contacts.clear();
    for (const [id, contact] of listing.contacts) contacts.set(id, contact);
    follow(listing.cursor);
  };
  const restart = (error: unknown) => {
    subscription?.unsubscribe();
    subscription = undefined;
    if (stopped) return;
    options.onError?.(error);
    // Not in a tight loop when the server refuses every position: 0, 1 s, 2 s… up to 30 s.
    const pause = failures === 0 ? 0 : Math.min(MAX_PAUSE_MS, 1000 * 2 ** (failures - 1));
    failures += 1;
    pauseTimer = setTimeout(() => {
      load().catch((listingError: unknown) => {
        if (stopped) return;
        stopped = true;
        options.onError?.(listingError);
      });
    }, pause);
  };

  await load();
  return {
    contacts,
    stop: () => {
      stopped = true;
      clearTimeout(pauseTimer);
      subscription?.unsubscribe();
    },
  };
}

/** Whether `eventId` is delivered for the first time (the last SEEN_EVENTS remembered). */
function firstDelivery(seen: Set<string>, eventId: string): boolean {
  if (seen.has(eventId)) return false;
  seen.add(eventId);
  if (seen.size > SEEN_EVENTS) seen.delete(seen.values().next().value!);
  return true;
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
