// @vitest-environment happy-dom
// `useEvents` and `useChannel` during server rendering: nothing is subscribed or joined there
// (effects never run on the server), so they render `idle`, not `listening` / `joined`; hydration
// renders the same (no mismatch), and the browser then subscribes and shows `listening` /
// `joined`. A render in the browser alone never shows `idle` while enabled.
import { act } from 'react';
import { createRoot, hydrateRoot, type Root } from 'react-dom/client';
import { renderToString } from 'react-dom/server';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TributaryProvider, useChannel, useEvents, type UseChannelResult, type UseEventsResult } from '../../src/index.ts';
import { createFakeClient, type FakeClient } from '../fake-client.ts';

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

let root: Root | undefined;
afterEach(() => {
  act(() => root?.unmount());
  root = undefined;
});

function page(fake: FakeClient, seen: UseEventsResult['status'][], enabled = true) {
  function Feed() {
    const { status } = useEvents('orders.status', { enabled });
    seen.push(status);
    return <p>{status}</p>;
  }
  return (
    <TributaryProvider client={fake.client}>
      <Feed />
    </TributaryProvider>
  );
}

describe('useEvents during server rendering', () => {
  it('renders idle on the server and subscribes to nothing', () => {
    const fake = createFakeClient();
    expect(renderToString(page(fake, []))).toBe('<p>idle</p>');
    expect(fake.events).toHaveLength(0);
  });

  it('hydrates the same idle without a mismatch, then subscribes and shows listening', () => {
    const server = createFakeClient();
    const container = document.createElement('div');
    container.innerHTML = renderToString(page(server, []));

    const fake = createFakeClient();
    const seen: UseEventsResult['status'][] = [];
    const recoverable: unknown[] = [];
    act(() => {
      root = hydrateRoot(container, page(fake, seen), { onRecoverableError: (error) => recoverable.push(error) });
    });
    expect(recoverable).toEqual([]);
    expect(seen[0]).toBe('idle');
    expect(seen.at(-1)).toBe('listening');
    expect(container.innerHTML).toBe('<p>listening</p>');
    expect(fake.events.map((entry) => [entry.key, entry.closed])).toEqual([['orders.status', false]]);
  });

  it('never renders idle in the browser alone while enabled, and always while disabled', () => {
    const fake = createFakeClient();
    const seen: UseEventsResult['status'][] = [];
    act(() => {
      root = createRoot(document.createElement('div'));
      root.render(page(fake, seen));
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set(['listening']));

    const disabled: UseEventsResult['status'][] = [];
    expect(renderToString(page(createFakeClient(), disabled, false))).toBe('<p>idle</p>');
    act(() => root?.render(page(fake, disabled, false)));
    expect(new Set(disabled)).toEqual(new Set(['idle']));
  });
});

function lobby(fake: FakeClient, seen: UseChannelResult['status'][]) {
  function Room() {
    const { status } = useChannel('lobby', () => {});
    seen.push(status);
    return <p>{status}</p>;
  }
  return (
    <TributaryProvider client={fake.client}>
      <Room />
    </TributaryProvider>
  );
}

describe('useChannel during server rendering', () => {
  it('renders idle on the server and joins nothing', () => {
    const fake = createFakeClient();
    expect(renderToString(lobby(fake, []))).toBe('<p>idle</p>');
    expect(fake.channels).toHaveLength(0);
  });

  it('hydrates the same idle without a mismatch, then joins and shows joined', () => {
    const container = document.createElement('div');
    container.innerHTML = renderToString(lobby(createFakeClient(), []));
    const fake = createFakeClient();
    const seen: UseChannelResult['status'][] = [];
    const recoverable: unknown[] = [];
    act(() => {
      root = hydrateRoot(container, lobby(fake, seen), { onRecoverableError: (error) => recoverable.push(error) });
    });
    expect(recoverable).toEqual([]);
    expect(seen[0]).toBe('idle');
    expect(seen.at(-1)).toBe('joined');
    expect(container.innerHTML).toBe('<p>joined</p>');
    expect(fake.channels.map((entry) => [entry.key, entry.closed])).toEqual([['lobby', false]]);
  });
});
