/**
 * A Node service keeping a mirror of its tenant's contacts — seed 004's "manual subscription
 * (server-to-server)", for a service that must hold the model, not only hear of changes.
 *
 * A mirror needs the rows that exist before it starts, not only the changes after: `liveModel` of
 * @tributary/client reads the snapshot (`records`, every page), then follows `changes` from the
 * snapshot's `cursor` — the server's race-free join: no change lost between the two, none applied
 * twice, no row going back to an older state. It resumes from the last change after a dropped
 * connection, reads the snapshot again after `RESYNC_REQUIRED` (history lost: slot recreated, log
 * expired) and hands the socket fresh tokens from `token` before they expire. With a filter, a row
 * updated so that it no longer matches arrives as LEFT and leaves the mirror.
 *
 * (`subscribeModel` hands each change to an awaited handler but holds no rows and reads no
 * snapshot: a service that writes changes to a store of its own — a search index — loads that
 * store from `records` first and passes the listing's `cursor` as `after`; see the README's "Model
 * snapshots".) Run it against a server:
 *
 *   TRIBUTARY_WS_URL=ws://127.0.0.1:4000/graphql TRIBUTARY_TOKEN=<JWT with crm.contacts.read> \
 *     node --conditions=tributary-source examples/node-service/contacts-mirror.ts
 */
import { fileURLToPath } from 'node:url';
import { createClient, type GetToken, type LiveModelStatus, type ModelChange, type ModelFilter } from '@tributary/client';

/** A row of the `contacts` table as the model delivers it (the mapping's record: the row). */
export type Contact = { readonly id: number; readonly tenant_id: string; readonly name: string | null; readonly status: string | null };

export interface ContactsMirrorOptions {
  /** `ws://host:4000/graphql` */
  readonly url: string;
  /** The service's token (asked again for every socket and before it expires: return the current one). */
  readonly token: GetToken;
  /** Evaluated by the server on the snapshot and the changes alike. @default every contact of the tenant */
  readonly filter?: ModelFilter;
  /** Each change from the stream after it was applied (logging, metrics, tests); not for the rows a snapshot brings. */
  readonly onApplied?: (change: ModelChange<Contact>) => void;
  /**
   * What the client recovers from by itself, why the mirror stopped (status `error`), and why the
   * server refused the token (status `unauthorized`: a SessionEndedError whose message carries the
   * server's reason, e.g. "Forbidden: No token: …").
   */
  readonly onError?: (error: unknown) => void;
}

export interface ContactsMirror {
  /** The contacts now, by entity key: the snapshot, then every change applied. */
  readonly contacts: ReadonlyMap<string, Contact>;
  /** `loading` until the first snapshot is in, `live` while following changes, `unauthorized` once the token is refused (see the client's README). */
  readonly status: LiveModelStatus;
  /** Settles once the first snapshot is held; rejects if the token was refused, or the mirror stopped or closed, before. */
  readonly ready: Promise<void>;
  /** Closes the socket and stops following. Idempotent. */
  close(): void;
}

export function startContactsMirror(options: ContactsMirrorOptions): ContactsMirror {
  const client = createClient({ url: options.url, getToken: options.token, ...(options.onError && { onError: options.onError }) });
  const applied = (_record: Contact, change: ModelChange<Contact>) => options.onApplied?.(change);
  const model = client.liveModel<Contact>('contacts', {
    ...(options.filter && { filter: options.filter }),
    onCreated: applied,
    onUpdated: applied,
    onDeleted: applied,
  });
  const ready = new Promise<void>((resolve, reject) => {
    // lastUpdatedAt is set by the first snapshot (status may still say `loading` or `resyncing`).
    const settle = () => {
      const { lastUpdatedAt, status, error } = model.getSnapshot();
      if (lastUpdatedAt !== null) resolve();
      // `unauthorized`: nothing is tried again before a new token (`client.reconnect()`): not a wait.
      else if (status === 'error' || status === 'closed' || status === 'unauthorized') reject(error ?? new Error(`contacts mirror ${status} before its snapshot`));
      else return;
      stopWaiting();
    };
    const stopWaiting = model.subscribe(settle);
    settle();
  });
  // A rejection nobody awaits must not end the process: `status` and `onError` say it too.
  ready.catch(() => {});
  // Each time the mirror stops, or its token is refused (told once per refusal, with the server's reason).
  let told: Error | null = null;
  model.subscribe(() => {
    const { status, error } = model.getSnapshot();
    if ((status === 'error' || status === 'unauthorized') && error !== told) options.onError?.(error);
    told = status === 'error' || status === 'unauthorized' ? error : null;
  });
  let closed = false;
  return {
    get contacts() {
      return model.getSnapshot().byId;
    },
    get status() {
      return model.status;
    },
    ready,
    close: () => {
      if (closed) return;
      closed = true;
      model.close();
      client.close();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const url = process.env['TRIBUTARY_WS_URL'] ?? 'ws://127.0.0.1:4000/graphql';
  const token = process.env['TRIBUTARY_TOKEN'] ?? '';
  const mirror = startContactsMirror({
    url,
    token: () => token,
    onApplied: (change) => process.stdout.write(`${change.operation} ${change.id}: ${mirror.contacts.size} contacts\n`),
    onError: (error) => {
      process.stderr.write(`${String(error)}\n`);
      // Stopped, or the token refused (nothing is tried again without a new one): exit non-zero.
      if (mirror.status === 'error' || mirror.status === 'unauthorized') {
        process.exitCode = 1;
        mirror.close();
      }
    },
  });
  mirror.ready.then(
    () => process.stdout.write(`snapshot: ${mirror.contacts.size} contacts\n`),
    () => {
      process.exitCode = 1;
      mirror.close();
    },
  );
  process.once('SIGINT', () => mirror.close());
  process.once('SIGTERM', () => mirror.close());
}
