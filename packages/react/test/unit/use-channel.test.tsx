// @vitest-environment happy-dom
import { act, StrictMode } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TributaryRequestError, type ChannelMessage } from '@tributary/client';
import { TributaryProvider, useChannel, type UseChannelResult } from '../../src/index.ts';
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
  act(() =>
    root!.render(
      <StrictMode>
        <TributaryProvider client={fake.client}>{element}</TributaryProvider>
      </StrictMode>,
    ),
  );
}

interface Typing {
  readonly user: string;
}

describe('useChannel', () => {
  it('shares one membership per channel, hands each message to every mounted callback, shows the error that ended it, and leaves on unmount', async () => {
    const fake = createFakeClient();
    const heard: string[] = [];
    const results: UseChannelResult[] = [];
    function Room({ label }: { readonly label: string }) {
      results.push(useChannel<Typing>('chat.room-7', (message) => heard.push(`${label}:${message.event}:${message.data.user}`)));
      return null;
    }
    render(
      fake,
      <>
        <Room label="a" />
        <Room label="b" />
      </>,
    );
    await act(nextTask);
    expect(fake.channels.filter((entry) => !entry.closed).map((entry) => entry.key)).toEqual(['chat.room-7']);
    expect(results.at(-1)).toEqual({ status: 'joined', error: null });

    const membership = fake.channels.find((entry) => !entry.closed)!;
    act(() => membership.options.onMessage({ channel: 'chat.room-7', event: 'typing', data: { user: 'ada' } } satisfies ChannelMessage<Typing>));
    expect(heard).toEqual(['a:typing:ada', 'b:typing:ada']);

    const forbidden = new TributaryRequestError([{ message: 'no', extensions: { code: 'FORBIDDEN' } }]);
    act(() => membership.options.onError?.(forbidden));
    expect(results.at(-1)).toEqual({ status: 'error', error: forbidden });

    act(() => root?.unmount());
    root = undefined;
    await nextTask();
    expect(fake.open()).toBe(0);
  });
});
