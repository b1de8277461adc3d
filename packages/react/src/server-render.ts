/**
 * Whether this render is the server's, or the browser's hydration of what the server rendered
 * (React reads the server snapshot then, so the hydrating render matches the server's HTML); false
 * in the browser after that. Hooks whose subscriptions start in effects — which never run on the
 * server — say `idle` then instead of the state they would have while subscribed.
 */
import { useSyncExternalStore } from 'react';

const noSubscription = () => () => {};

export const useServerRender = (): boolean => useSyncExternalStore(noSubscription, () => false, () => true);
