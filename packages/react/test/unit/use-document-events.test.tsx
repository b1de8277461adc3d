// @vitest-environment happy-dom
import { act, StrictMode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SessionEndedError, TributaryRequestError, type TopicEvent } from '@tributary/client';
import { TributaryProvider, useDocument, useEvents, type UseDocumentResult, type UseEventsResult } from '../../src/index.ts';
import { deferred, type Deferred } from '../../../../test/helpers/wait-for.ts';
import { createFakeClient, nextTask, type FakeClient } from '../fake-client.ts';

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

let root: Root | undefined;
afterEach(() => {
  act(() => root?.unmount());
  root = undefined;
});

function render(fake: FakeClient, element: React.ReactNode): void {
  root = createRoot(document.createElement('div'));
  root.render(
    <StrictMode>
      <TributaryProvider client={fake.client}>{element}</TributaryProvider>
    </StrictMode>,
  );
}

/** Two components, labelled a and b, side by side. */
function renderFeeds(fake: FakeClient, Feed: (props: { readonly label: string }) => null): void {
  act(() =>
    render(
      fake,
      <>
        <Feed label="a" />
        <Feed label="b" />
      </>,
    ),
  );
}

/** What the server ends a subscription with when a refreshed token may no longer read it. */
const revoked = () => new TributaryRequestError([{ message: 'The refreshed token may no longer read this subscription', extensions: { code: 'FORBIDDEN', reason: 'PERMISSION_REVOKED' } }]);
const rateLimited = () => new TributaryRequestError([{ message: 'Too many active operations', extensions: { code: 'RATE_LIMITED' } }]);

function event(id: string, type: string): TopicEvent {
  return { id, type, cursor: `c-${id}` } as unknown as TopicEvent;
}

describe('useDocument', () => {
  it('shares one subscription per document, shows each delivered revision, and the error that stopped it', async () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Doc({ id }: { readonly id: string }) {
      seen.push(useDocument('boards', id));
      return null;
    }
    act(() =>
      render(
        fake,
        <>
          <Doc id="b1" />
          <Doc id="b1" />
          <Doc id="b2" />
        </>,
      ),
    );
    expect(fake.documents.map((document) => document.key)).toEqual(['boards/b1', 'boards/b2']);
    expect(seen.at(-1)).toMatchObject({ status: 'loading', document: undefined });

    const [b1] = fake.documents;
    act(() => b1!.options.onDocument({ service: 'boards', id: 'b1', revision: 3, operation: 'SNAPSHOT', data: { title: 'Plan' } }));
    expect(seen.at(-1)).toMatchObject({ status: 'ready', revision: 3, data: { title: 'Plan' } });
    act(() => b1!.options.onError?.(new Error('FORBIDDEN')));
    expect(seen.at(-1)).toMatchObject({ status: 'error', error: new Error('FORBIDDEN'), revision: 3 });

    act(() => root?.unmount());
    root = undefined;
    await nextTask();
    expect(fake.open()).toBe(0);
  });

  it('drops the document when the client’s user changes (onReset: a new login), then shows the new user’s snapshot', () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Doc() {
      seen.push(useDocument('boards', 'b1'));
      return null;
    }
    act(() => render(fake, <Doc />));
    const { options } = fake.documents[0]!;
    act(() => options.onDocument({ service: 'boards', id: 'b1', revision: 3, operation: 'SNAPSHOT', data: { secret: 'tenant-a payroll' } }));
    act(() => options.onReset?.());
    expect(seen.at(-1)).toMatchObject({ status: 'loading', document: undefined, data: undefined, revision: undefined, error: null });
    act(() => options.onDocument({ service: 'boards', id: 'b1', revision: 1, operation: 'SNAPSHOT', data: { plan: 'tenant-b' } }));
    expect(seen.at(-1)).toMatchObject({ status: 'ready', revision: 1, data: { plan: 'tenant-b' } });
  });

  it('keeps the error of a stopped subscription but drops its document at a new login', () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Doc() {
      seen.push(useDocument('boards', 'b1'));
      return null;
    }
    act(() => render(fake, <Doc />));
    const { options } = fake.documents[0]!;
    act(() => options.onDocument({ service: 'boards', id: 'b1', revision: 3, operation: 'SNAPSHOT', data: { secret: 'tenant-a payroll' } }));
    act(() => options.onError?.(new Error('FORBIDDEN')));
    act(() => options.onReset?.());
    expect(seen.at(-1)).toMatchObject({ status: 'error', error: new Error('FORBIDDEN'), document: undefined, data: undefined });
  });
});

describe('useDocument while not served', () => {
  it('shows the refusal the client retries (RATE_LIMITED) in error, still loading, and clears it when served again', () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Doc() {
      seen.push(useDocument('boards', 'b1'));
      return null;
    }
    act(() => render(fake, <Doc />));
    const { options } = fake.documents[0]!;
    const refusal = rateLimited();
    act(() => options.onRetry?.(refusal));
    expect(seen.at(-1)).toMatchObject({ status: 'loading', error: refusal });
    act(() => options.onResume?.());
    expect(seen.at(-1)).toMatchObject({ status: 'loading', error: null });
  });

  it('shows an unauthorized connection (4403) in error instead of a silent loading', () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Doc() {
      seen.push(useDocument('boards', 'b1'));
      return null;
    }
    act(() => render(fake, <Doc />));
    const { options } = fake.documents[0]!;
    act(() => options.onRetry?.(new SessionEndedError(4403)));
    expect(seen.at(-1)?.error).toBeInstanceOf(SessionEndedError);
    act(() => options.onDocument({ service: 'boards', id: 'b1', revision: 1, operation: 'SNAPSHOT', data: {} }));
    expect(seen.at(-1)).toMatchObject({ status: 'ready', error: null });
  });

  it('drops the document when the server ends the subscription for a revoked permission', () => {
    const fake = createFakeClient();
    const seen: UseDocumentResult[] = [];
    function Doc() {
      seen.push(useDocument('boards', 'b1'));
      return null;
    }
    act(() => render(fake, <Doc />));
    const { options } = fake.documents[0]!;
    act(() => options.onDocument({ service: 'boards', id: 'b1', revision: 3, operation: 'SNAPSHOT', data: { secret: 'payroll' } }));
    const error = revoked();
    act(() => options.onError?.(error));
    expect(seen.at(-1)).toMatchObject({ status: 'error', error, document: undefined, data: undefined, revision: undefined });
  });
});

describe('useEvents while not served', () => {
  it('shows the refusal the client retries in error, still listening, and clears it when served again', () => {
    const fake = createFakeClient();
    const seen: UseEventsResult[] = [];
    function Feed() {
      seen.push(useEvents('orders'));
      return null;
    }
    act(() => render(fake, <Feed />));
    const { options } = fake.events[0]!;
    const refusal = rateLimited();
    act(() => options.onRetry?.(refusal));
    expect(seen.at(-1)).toMatchObject({ status: 'listening', error: refusal });
    act(() => options.onResume?.());
    expect(seen.at(-1)).toMatchObject({ status: 'listening', error: null });
  });

  it('drops its events when the server ends the subscription for a revoked permission', () => {
    const fake = createFakeClient();
    const seen: UseEventsResult[] = [];
    function Feed() {
      seen.push(useEvents('orders'));
      return null;
    }
    act(() => render(fake, <Feed />));
    const { options } = fake.events[0]!;
    act(() => options.onEvent(event('1', 'paid')));
    const error = revoked();
    act(() => options.onError?.(error));
    expect(seen.at(-1)).toMatchObject({ status: 'error', error, events: [], lastEvent: undefined });
  });
});

describe('useEvents', () => {
  it('shares one subscription, keeps the newest events, and calls each mounted onEvent once per event', () => {
    const fake = createFakeClient();
    const seen: UseEventsResult[] = [];
    const calls: string[] = [];
    function Feed({ label }: { readonly label: string }) {
      seen.push(useEvents('orders', { where: { field: 'type', eq: 'paid' }, keep: 2, onEvent: (e) => calls.push(`${label} ${e.id}`) }));
      return null;
    }
    renderFeeds(fake, Feed);
    expect(fake.events).toHaveLength(1);
    expect(fake.events[0]).toMatchObject({ key: 'orders', options: { where: { field: 'type', eq: 'paid' } } });
    expect(seen.at(-1)).toMatchObject({ status: 'listening', events: [] });

    const { onEvent } = fake.events[0]!.options;
    act(() => {
      onEvent(event('1', 'paid'));
      onEvent(event('2', 'paid'));
      onEvent(event('3', 'paid'));
    });
    expect(seen.at(-1)?.events.map((e) => e.id)).toEqual(['2', '3']);
    expect(seen.at(-1)?.lastEvent?.id).toBe('3');
    expect(calls).toEqual(['a 1', 'b 1', 'a 2', 'b 2', 'a 3', 'b 3']);
  });

  it('keeps exactly `keep` events, also one', () => {
    const fake = createFakeClient();
    const seen: UseEventsResult[] = [];
    function Latest() {
      seen.push(useEvents('orders', { keep: 1 }));
      return null;
    }
    act(() => render(fake, <Latest />));
    const { onEvent } = fake.events[0]!.options;
    act(() => {
      for (const id of ['1', '2', '3']) onEvent(event(id, 'paid'));
    });
    expect(seen.at(-1)?.events.map((e) => e.id)).toEqual(['3']);
  });

  it('clears its events when the client’s user changes (onReset: a new login)', () => {
    const fake = createFakeClient();
    const seen: UseEventsResult[] = [];
    function Feed() {
      seen.push(useEvents('orders'));
      return null;
    }
    act(() => render(fake, <Feed />));
    const { options } = fake.events[0]!;
    act(() => options.onEvent(event('1', 'paid')));
    act(() => options.onReset?.());
    expect(seen.at(-1)).toMatchObject({ status: 'listening', events: [], lastEvent: undefined });
  });

  it('clears its events on a resync and hands the client a promise of every mounted onResync: it waits for the slowest, and fails when one fails', async () => {
    const fake = createFakeClient();
    const seen: UseEventsResult[] = [];
    const refetches = new Map<string, Deferred<void>>();
    function Feed({ label }: { readonly label: string }) {
      seen.push(
        useEvents('orders', {
          onResync: () => {
            const refetch = deferred();
            refetches.set(label, refetch);
            return refetch.promise;
          },
        }),
      );
      return null;
    }
    renderFeeds(fake, Feed);
    const { onEvent, onResync } = fake.events[0]!.options;
    act(() => onEvent(event('1', 'paid')));
    let outcome: Promise<string> | undefined;
    act(() => {
      outcome = Promise.resolve(onResync?.()).then(
        () => 'done',
        (error: unknown) => `failed: ${(error as Error).message}`,
      );
    });
    expect(seen.at(-1)).toMatchObject({ events: [], lastEvent: undefined });
    expect([...refetches.keys()]).toEqual(['a', 'b']);
    // Not settled while one refetch still runs, even when the other has failed.
    refetches.get('a')!.reject(new Error('a could not refetch'));
    const pending = await Promise.race([outcome!, nextTask().then(() => 'pending')]);
    expect(pending).toBe('pending');
    refetches.get('b')!.resolve();
    expect(await outcome!).toBe('failed: a could not refetch');
  });

  it("calls every mounted onEvent although one throws, and hands the client the error (it reports it, the stream goes on)", () => {
    const fake = createFakeClient();
    const calls: string[] = [];
    function Feed({ label }: { readonly label: string }) {
      useEvents('orders', {
        onEvent: (e) => {
          calls.push(`${label} ${e.id}`);
          if (label === 'a') throw new Error(`a cannot handle ${e.id}`);
        },
      });
      return null;
    }
    renderFeeds(fake, Feed);
    const { onEvent } = fake.events[0]!.options;
    act(() => {
      expect(() => onEvent(event('1', 'paid'))).toThrow('a cannot handle 1');
    });
    expect(calls).toEqual(['a 1', 'b 1']);
  });
});

