/**
 * The server's WebSocket URL, checked where a client is made: a URL the WebSocket constructor
 * refuses (`wss//host`, a relative path) threw inside graphql-ws's connection attempt, which then
 * never settled — no error reported, a rejection nothing handled, and a `close()` that never ended.
 */
const SOCKET_PROTOCOLS = new Set(['ws:', 'wss:', 'http:', 'https:']);

/** @throws TypeError naming `who` when `url` is not an absolute ws://, wss:// (or http(s)://) URL. */
export function checkSocketUrl(url: string, who: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol === undefined || !SOCKET_PROTOCOLS.has(protocol)) {
    throw new TypeError(`${who}: url must be an absolute ws:// or wss:// URL (the server's /graphql), got ${JSON.stringify(url)}`);
  }
}
