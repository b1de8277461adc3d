import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

/** What GraphiQL opens on when it has nothing stored: a subscription and the mutation that feeds it. */
export const GRAPHIQL_EXAMPLE = `# Tributary: every topic is a resumable stream.
#
# 1. Run "Watch": it waits for events on the topic.
# 2. Run "Publish" (from another tab, or any client): the event appears in Watch's results.
#
# With JWT_SECRET, JWT_SECRETS or JWT_JWKS_URL set, put your token in Headers below, then
# fetch the schema again (the circular arrow; until then GraphiQL shows UNAUTHENTICATED):
#   { "Authorization": "Bearer <token>" }

subscription Watch {
  events(topic: "demo.greetings") {
    id
    type
    payload
    cursor
  }
}

mutation Publish {
  publish(topic: "demo.greetings", type: "demo.hello", payload: { text: "hello" }) {
    id
    cursor
  }
}
`;

/** The first script of yoga's GraphiQL page: the bundle inside it captures `WebSocket` when it runs. */
const FIRST_SCRIPT = '<script>';

/**
 * yoga's GraphiQL page, with subscriptions that authenticate like queries. GraphiQL sends its
 * Headers tab with every HTTP request, but over WebSocket only inside each `subscribe`
 * message's `extensions`, after an empty `connection_init` that a server requiring tokens
 * refuses (its socket executor takes no `webSocketImpl`; it captures the global `WebSocket`).
 * A script before the bundle replaces the page's `WebSocket` with one that holds a
 * credential-less `connection_init` back until the first `subscribe`, sends it with that
 * operation's headers as its payload — the server verifies the token where every client
 * presents it — and releases the rest once the server acknowledged it.
 */
export function renderTributaryGraphiQL(options?: GraphiQLOptions): string {
  const page = renderGraphiQL(options);
  const at = page.indexOf(FIRST_SCRIPT);
  if (at === -1) throw new Error(`GraphiQL page changed: no "${FIRST_SCRIPT}" (check @graphql-yoga/render-graphiql)`);
  return `${page.slice(0, at)}<script>(${String(installHeadersInConnectionInit)})();</script>\n${page.slice(at)}`;
}

/**
 * Runs in the browser (inlined with `String()`): self-contained, no imports, no outer names.
 * Replaces the page's `WebSocket` (the page is GraphiQL alone).
 */
function installHeadersInConnectionInit(): void {
  const hasAuthorization = (payload: unknown): boolean =>
    typeof payload === 'object' && payload !== null && Object.keys(payload).some((key) => key.toLowerCase() === 'authorization');

  class HeadersInConnectionInit extends WebSocket {
    /** `passing`: as it is; `holding`: the init is held back; `acknowledging`: sent, waiting for the ack. */
    #state: 'passing' | 'holding' | 'acknowledging' = 'passing';
    #init: Record<string, unknown> | undefined;
    /** What the client sent while the init was held or unacknowledged, in order. */
    #queued: string[] = [];
    #onmessage: ((event: MessageEvent) => void) | null = null;

    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      super.onmessage = (event: MessageEvent) => {
        if (this.#state === 'acknowledging' && typeof event.data === 'string' && (JSON.parse(event.data) as { type?: string }).type === 'connection_ack') {
          // The client took the local ack already; the server's releases what it sent since.
          this.#state = 'passing';
          for (const message of this.#queued.splice(0)) super.send(message);
          return;
        }
        this.#onmessage?.call(this, event);
      };
    }

    override get onmessage(): ((event: MessageEvent) => void) | null {
      return this.#onmessage;
    }

    override set onmessage(handler: ((event: MessageEvent) => void) | null) {
      this.#onmessage = handler;
    }

    override send(data: string): void {
      const message = JSON.parse(data) as { type?: string; payload?: Record<string, unknown> & { extensions?: { headers?: unknown } } };
      if (this.#state === 'passing' && message.type === 'connection_init' && !hasAuthorization(message.payload)) {
        // Acknowledged locally, so the client goes on to its first subscribe, which has the headers.
        this.#state = 'holding';
        this.#init = message.payload ?? {};
        this.#onmessage?.call(this, new MessageEvent('message', { data: '{"type":"connection_ack"}' }));
        return;
      }
      if (this.#state === 'holding' && message.type === 'subscribe') {
        const headers = message.payload?.extensions?.headers;
        super.send(JSON.stringify({ type: 'connection_init', payload: { ...this.#init, ...(typeof headers === 'object' && headers) } }));
        this.#state = 'acknowledging';
      }
      if (this.#state === 'passing') super.send(data);
      else this.#queued.push(data);
    }
  }

  globalThis.WebSocket = HeadersInConnectionInit;
}
