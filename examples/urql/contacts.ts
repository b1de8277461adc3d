/**
 * urql against Tributary: queries over HTTP (`fetchExchange`), subscriptions over graphql-ws
 * (`subscriptionExchange`) — urql's documented setup, unchanged. The token goes in the
 * `authorization` header over HTTP and in `connection_init` over the socket.
 *
 * `watchContacts` reads every page of `records` (`after: pageInfo.endCursor` while `hasNextPage`),
 * then subscribes to `changes` with the same filter and `after:` the listing's `cursor` (the same
 * on every page — not a page's `endCursor`): every change the rows do not contain arrives, none
 * they already reflect (the README's "Model snapshots"). When the stream ends with an error —
 * RESYNC_REQUIRED after a TRUNCATE or lost history — the error is told (`onError`), the contacts
 * are listed again and the stream followed from the new listing's cursor; changes are applied once
 * each, by `eventId` (urql's error result still carries the previous result's data: the last
 * change, which must not be applied again).
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
  client: Client,
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

  const follow = (after: string) => {
    let ended = false;
    subscription = client.subscription(CONTACT_CHANGES, { filter, after }).subscribe((result) => {
      if (ended) return;
      // The error first: urql's error result still carries the last result's data (a change already applied).
      if (result.error) {
        ended = true;
        restart(result.error);
        return;
      }
      if (!result.data) return;
      const change = result.data.changes;
      failures = 0;
      if (!firstDelivery(seen, change.eventId)) return;
      if (applyChange(contacts, change)) onChange(change);
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
