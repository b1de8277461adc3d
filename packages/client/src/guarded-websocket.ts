/**
 * A WebSocket class whose sockets always have an `error` listener. graphql-ws's `terminate()`
 * (our connect and pong timeouts) clears the socket's `onerror` at once; the `ws` package in Node
 * then emits "WebSocket was closed before the connection was established" for a socket still
 * connecting — an EventEmitter `error` with no listener, which kills the process. Browsers never
 * throw there. The close still reaches graphql-ws (`onclose`), so the client retries as it should;
 * the listener only keeps the error from being fatal. Found by `npm run bench -- reconnect` (5,000
 * clients against an overloaded server).
 */

type WebSocketClass = new (url: string, protocols?: string | string[]) => { addEventListener(type: 'error', listener: () => void): void };

const guarded = new WeakMap<WebSocketClass, WebSocketClass>();

/** `impl` (or the global WebSocket) with an `error` listener on every socket; undefined when there is neither. */
export function guardedWebSocket(impl: unknown): unknown {
  const base = (impl ?? (globalThis as { WebSocket?: unknown }).WebSocket) as WebSocketClass | undefined;
  if (typeof base !== 'function') return impl;
  let wrapped = guarded.get(base);
  if (!wrapped) {
    wrapped = class extends base {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener('error', () => {});
      }
    };
    guarded.set(base, wrapped);
  }
  return wrapped;
}
