/**
 * `<TributaryProvider client={client}>`: hands the client from `createClient` to the hooks below
 * it, as Apollo's and urql's providers do. The provider does not create or close the client: it
 * lives as long as the application decides (create it once, outside components).
 */
import { createContext, createElement, useCallback, useContext, useSyncExternalStore, type ReactNode } from 'react';
import type { ConnectionState, TributaryClient } from '@tributary/client';

const TributaryContext = createContext<TributaryClient | null>(null);
TributaryContext.displayName = 'TributaryContext';

export interface TributaryProviderProps {
  readonly client: TributaryClient;
  readonly children?: ReactNode;
}

export function TributaryProvider({ client, children }: TributaryProviderProps): ReactNode {
  return createElement(TributaryContext.Provider, { value: client }, children);
}

/** The client of the nearest `TributaryProvider`. @throws Error outside one. */
export function useTributaryClient(): TributaryClient {
  const client = useContext(TributaryContext);
  if (client === null) throw new Error('useTributaryClient: no <TributaryProvider client={…}> above this component');
  return client;
}

/** The socket's state (`connecting`, `connected`, `reconnecting`…); on the server, `connecting`. */
export function useConnectionState(): ConnectionState {
  const client = useTributaryClient();
  const subscribe = useCallback((listener: () => void) => client.onStateChange(listener), [client]);
  return useSyncExternalStore(subscribe, () => client.state, () => 'connecting');
}
