/**
 * Seed 004's first example as a page: the contacts of the token's tenant, live, inside
 * <StrictMode> (which mounts every component twice in development: still one server subscription).
 *
 * Configured from the address: `?ws=ws://host:4000/graphql&token=<JWT>` (a real application takes
 * the token from its auth library: `getToken` is called for every socket and before expiry).
 */
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from '@tributary/client';
import { TributaryProvider, useRealtime } from '@tributary/react';

type Contact = { readonly id: number; readonly name: string; readonly status: string | null };

const params = new URLSearchParams(location.search);
const client = createClient({
  url: params.get('ws') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
  getToken: () => params.get('token'),
});

function ContactList() {
  const [notice, setNotice] = useState('');
  const { records, isConnected, lastUpdatedAt } = useRealtime<Contact>('contacts', {
    onCreated: (record) => setNotice(`New contact: ${record.name}`),
    onUpdated: (record) => setNotice(`Updated contact: ${record.name}`),
    onDeleted: (record) => setNotice(`Soft-deleted contact: ${record.id}`),
  });

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
