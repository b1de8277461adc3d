/**
 * Seed 004's first example as a page: the contacts of the token's tenant, live, inside
 * <StrictMode> (which mounts every component twice in development: still one server subscription).
 *
 * Configured from the address: `?ws=ws://host:4000/graphql&token=<JWT>` (a real application takes
 * the token from its auth library: `getToken` is called for every socket and before expiry).
 */
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient, SessionEndedError } from '@tributary/client';
import { TributaryProvider, useRealtime } from '@tributary/react';

type Contact = { readonly id: number; readonly name: string; readonly status: string | null };

const params = new URLSearchParams(location.search);
const client = createClient({
  url: params.get('ws') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
  getToken: () => params.get('token'),
});

function ContactList() {
  const [notice, setNotice] = useState('');
  const { records, isConnected, lastUpdatedAt, status, error } = useRealtime<Contact>('contacts', {
    onCreated: (record) => setNotice(`New contact: ${record.name}`),
    onUpdated: (record) => setNotice(`Updated contact: ${record.name}`),
    onDeleted: (record) => setNotice(`Soft-deleted contact: ${record.id}`),
  });

  // The server refused the token (4403: none, invalid, expired for good): nothing is tried again
  // until the application has a new one (`client.reconnect()` after the login). Its reason says why.
  if (status === 'unauthorized') {
    const reason = error instanceof SessionEndedError && error.reason ? error.reason : error?.message;
    return <p role="alert">Not signed in — {reason}</p>;
  }
  // Stopped for good (FORBIDDEN: the token may not read contacts, an unknown model…).
  if (status === 'error') return <p role="alert">Contacts unavailable — {error?.message}</p>;
  if (status === 'loading') return <span>Loading...</span>;
  if (!isConnected) return <span>Reconnecting...</span>;
  return (
    <>
      <p role="status">{notice}</p>
      <ul aria-label="contacts">
        {records.map((c) => (
          <li key={c.id}>{c.name}</li>
        ))}
      </ul>
      <small>Last updated {lastUpdatedAt}</small>
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <TributaryProvider client={client}>
      <ContactList />
    </TributaryProvider>
  </StrictMode>,
);
