// Server rendering, in Node (no DOM): importing the package touches no browser global, and a page
// renders its loading state without opening a subscription.
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { TributaryProvider, useDocument, useEvents, useRealtime } from '../../src/index.ts';
import { createFakeClient } from '../fake-client.ts';

function Page() {
  const { records, isConnected, status } = useRealtime('contacts', { filter: { status: 'eq.active' } });
  const document = useDocument('boards', 'b1');
  const events = useEvents('orders');
  return (
    <p>
      {isConnected ? 'live' : 'Reconnecting...'} {status} {records.length} {document.status} {events.status}
    </p>
  );
}

describe('server rendering', () => {
  it('renders the loading state and subscribes to nothing', () => {
    expect('window' in globalThis).toBe(false);
    const fake = createFakeClient();
    const html = renderToString(
      <TributaryProvider client={fake.client}>
        <Page />
      </TributaryProvider>,
    );
    expect(html).toBe('<p>Reconnecting...<!-- --> <!-- -->loading<!-- --> <!-- -->0<!-- --> <!-- -->loading<!-- --> <!-- -->idle</p>');
    expect(fake.open()).toBe(0);
    expect(fake.models.length + fake.documents.length + fake.events.length).toBe(0);
  });
});
