// @vitest-environment happy-dom
import { act, StrictMode, useState } from 'react';
import { flushSync } from 'react-dom';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ModelChange, ModelRecord } from '@tributary/client';
import { sharedModelCount, TributaryProvider, useRealtime, type UseRealtimeOptions, type UseRealtimeResult } from '../../src/index.ts';
import { createFakeClient, nextTask, type FakeClient } from '../fake-client.ts';

type Contact = { readonly id: number; readonly name: string };

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

let root: Root | undefined;
afterEach(() => {
  act(() => root?.unmount());
  root = undefined;
});

function render(fake: FakeClient, element: React.ReactNode, strict = true): void {
  const container = document.createElement('div');
  document.body.append(container);
  root = createRoot(container);
  const tree = <TributaryProvider client={fake.client}>{element}</TributaryProvider>;
  root.render(strict ? <StrictMode>{tree}</StrictMode> : tree);
}

function change(eventId: string, operation: ModelChange['operation'], id: number, name: string): ModelChange {
  return { eventId, operation, id: String(id), record: { id, name }, unchangedColumns: [], cursor: `c-${eventId}`, lastUpdatedAt: '2026-01-01T00:00:01.000Z' } as ModelChange;
}

/** Renders the seed's ContactList and reports every result it rendered with. */
function ContactList({ seen, options }: { readonly seen: UseRealtimeResult<Contact>[]; readonly options?: UseRealtimeOptions<Contact> }) {
  const result = useRealtime<Contact>('contacts', options);
  seen.push(result);
  if (!result.isConnected) return <span>Reconnecting...</span>;
  return (
    <ul>
      {result.records.map((c) => (
        <li key={c.id}>{c.name}</li>
      ))}
    </ul>
  );
}

describe('useRealtime', () => {
  it('opens one live model under StrictMode for every component with the same model and filter, and closes it after the last unmount', async () => {
    const fake = createFakeClient();
    act(() =>
      render(
        fake,
        <>
          <ContactList seen={[]} options={{ filter: { status: 'eq.active', name: 'like.A%' } }} />
          <ContactList seen={[]} options={{ filter: { name: 'like.A%', status: 'eq.active' } }} />
        </>,
      ),
    );
    await act(nextTask);
    expect(fake.models).toHaveLength(1);
    expect(fake.models[0]).toMatchObject({ model: 'contacts', options: { filter: { status: 'eq.active', name: 'like.A%' } }, closed: false });
    expect(sharedModelCount(fake.client)).toBe(1);

    // Synchronous act: no task runs before the assertion, so the release is still pending.
    act(() => root?.unmount());
    root = undefined;
    expect(fake.models[0]!.closed).toBe(false);
    await nextTask();
    expect(fake.models[0]!.closed).toBe(true);
    expect(sharedModelCount(fake.client)).toBe(0);
  });

  it('keeps the subscription when a component is mounted, unmounted and mounted again in one go', async () => {
    const fake = createFakeClient();
    act(() => {
      render(fake, <ContactList seen={[]} />, false);
    });
    // Each render committed at once (not batched into one): a real unmount, then a real mount.
    act(() => {
      flushSync(() => root?.render(<TributaryProvider client={fake.client}>{null}</TributaryProvider>));
      expect(document.body.textContent).toBe('');
      flushSync(() =>
        root?.render(
          <TributaryProvider client={fake.client}>
            <ContactList seen={[]} />
          </TributaryProvider>,
        ),
      );
    });
    await act(nextTask);
    expect(fake.models).toHaveLength(1);
    expect(fake.open()).toBe(1);
  });

  it('shows the snapshot, is connected only once the stream is live, and renders each change', () => {
    const fake = createFakeClient();
    const seen: UseRealtimeResult<Contact>[] = [];
    act(() => render(fake, <ContactList seen={seen} />));
    expect(seen.at(-1)).toMatchObject({ records: [], isConnected: false, status: 'loading', lastUpdatedAt: null, error: null });
    expect(document.body.textContent).toBe('Reconnecting...');

    const { store } = fake.models[0]!;
    act(() => store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z'));
    expect(seen.at(-1)).toMatchObject({ isConnected: false, status: 'loading', records: [{ id: 1, name: 'Ann' }] });

    act(() => store.setStatus('live'));
    expect(seen.at(-1)).toMatchObject({ isConnected: true, status: 'live', lastUpdatedAt: '2026-01-01T00:00:00.000Z' });
    expect(document.body.textContent).toBe('Ann');

    act(() => {
      store.apply(change('e1', 'CREATED', 2, 'Bob'));
    });
    expect(document.body.textContent).toBe('AnnBob');
    expect(seen.at(-1)?.lastUpdatedAt).toBe('2026-01-01T00:00:01.000Z');

    act(() => store.setStatus('reconnecting'));
    expect(seen.at(-1)).toMatchObject({ isConnected: false, status: 'reconnecting', records: [{ name: 'Ann' }, { name: 'Bob' }] });
    act(() => store.setStatus('error', new Error('FORBIDDEN')));
    expect(seen.at(-1)).toMatchObject({ status: 'error', error: new Error('FORBIDDEN') });
  });

  it('renders the shared state at once in a component mounted after the model loaded', () => {
    const fake = createFakeClient();
    const later: UseRealtimeResult<Contact>[] = [];
    function Page() {
      const [second, setSecond] = useState(false);
      return (
        <>
          <ContactList seen={[]} />
          <button onClick={() => setSecond(true)}>more</button>
          {second && <ContactList seen={later} />}
        </>
      );
    }
    act(() => render(fake, <Page />));
    act(() => {
      fake.models[0]!.store.load([{ id: '1', record: { id: 1, name: 'Ann' } }], '2026-01-01T00:00:00.000Z');
      fake.models[0]!.store.setStatus('live');
    });
    act(() => document.querySelector('button')?.click());
    expect(later[0]).toMatchObject({ isConnected: true, records: [{ name: 'Ann' }] });
    expect(fake.models).toHaveLength(1);
  });

  it('calls each callback once per event id, the latest function, without resubscribing for a new inline one', () => {
    const fake = createFakeClient();
    const calls: string[] = [];
    function Counter({ label }: { readonly label: string }) {
      const [renders, setRenders] = useState(0);
      useRealtime<Contact>('contacts', {
        onCreated: (record) => calls.push(`${label}${renders} created ${record.name}`),
        onUpdated: (record) => calls.push(`${label}${renders} updated ${record.name}`),
        onDeleted: (record) => calls.push(`${label}${renders} deleted ${record.name}`),
      });
      return <button className={label} onClick={() => setRenders((n) => n + 1)} />;
    }
    act(() =>
      render(
        fake,
        <>
          <Counter label="a" />
          <Counter label="b" />
        </>,
      ),
    );
    const { store } = fake.models[0]!;
    act(() => {
      store.apply(change('e1', 'CREATED', 1, 'Ann'));
    });
    act(() => document.querySelector<HTMLButtonElement>('button.a')?.click());
    act(() => {
      store.apply(change('e1', 'CREATED', 1, 'Ann')); // redelivered: same event id
      store.apply(change('e2', 'UPDATED', 1, 'Anna'));
      store.apply(change('e3', 'DELETED', 1, 'Anna'));
    });
    expect(calls).toEqual(['a0 created Ann', 'b0 created Ann', 'a1 updated Anna', 'b0 updated Anna', 'a1 deleted Anna', 'b0 deleted Anna']);
    expect(fake.models).toHaveLength(1);
  });

  it('subscribes to nothing while disabled, and starts when enabled', () => {
    const fake = createFakeClient();
    const seen: UseRealtimeResult<Contact>[] = [];
    function Toggle() {
      const [enabled, setEnabled] = useState(false);
      return (
        <>
          <ContactList seen={seen} options={{ enabled }} />
          <button onClick={() => setEnabled(true)} />
        </>
      );
    }
    act(() => render(fake, <Toggle />));
    expect(fake.models).toHaveLength(0);
    expect(seen.at(-1)).toMatchObject({ status: 'idle', isConnected: false, records: [] });
    act(() => document.querySelector('button')?.click());
    expect(fake.models).toHaveLength(1);
    expect(seen.at(-1)?.status).toBe('loading');
  });

  it('opens a new live model when the filter changes by value, and releases the old one', async () => {
    const fake = createFakeClient();
    function Filtered() {
      const [status, setStatus] = useState('active');
      useRealtime<ModelRecord>('contacts', { filter: { status: `eq.${status}` } });
      return <button onClick={() => setStatus('lead')} />;
    }
    act(() => render(fake, <Filtered />));
    act(() => document.querySelector('button')?.click());
    await act(nextTask);
    expect(fake.models.map((model) => [model.options.filter, model.closed])).toEqual([
      [{ status: 'eq.active' }, true],
      [{ status: 'eq.lead' }, false],
    ]);
  });
});
