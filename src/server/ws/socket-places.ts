/**
 * The `WS_MAX_CONNECTIONS` places of an instance, held by two kinds of sockets:
 *
 * - waiting: open, not acknowledged yet — no `connection_init`, or its token still being
 *   verified. Anyone can open one without a token, so a place held this way is lent, not given:
 *   when the instance is full, a new socket takes the place of the oldest waiting one, which is
 *   closed (4408). A real client sends `connection_init` as soon as its socket opens, so it is
 *   only closed this way if the instance's whole room for waiting sockets was opened again within
 *   its round trip and verification; an attacker holding sockets open without a token keeps no one out.
 * - acknowledged: its token verified. Never closed to make room; a new socket is refused only
 *   when acknowledged sockets hold every place.
 *
 * No share is reserved for either kind: waiting sockets may use every place no acknowledged
 * socket holds, so the more room there is, the faster an attacker would have to open sockets to
 * close a real client's before it is acknowledged. A cap per remote address is deliberately
 * absent: clients behind a load balancer or a NAT share one address.
 *
 * A socket closed to make room leaves its place at once, before its closing handshake ends: an
 * attacker that never answers close frames would otherwise fill the instance with sockets that
 * can no longer be closed to make room (ws ends such a handshake after its `closeTimeout`).
 */
export interface SocketPlaces<S> {
  /** Whether a new socket would get a place: one is free, or a waiting socket can make room. */
  hasRoom(): boolean;
  /**
   * Gives `socket` a place as a waiting socket, first closing the oldest waiting one (`evict`)
   * when the instance is full. False, and no place given, when acknowledged sockets hold every place.
   */
  add(socket: S): boolean;
  /** `socket` was acknowledged: its place can no longer be taken. */
  acknowledged(socket: S): void;
  /** `socket` closed: its place is free. */
  closed(socket: S): void;
}

export interface SocketPlacesOptions<S> {
  /** Places of the instance (`WS_MAX_CONNECTIONS`). */
  readonly max: number;
  /** Closes a waiting socket whose place a new socket takes. */
  readonly evict: (socket: S) => void;
}

export function createSocketPlaces<S>(options: SocketPlacesOptions<S>): SocketPlaces<S> {
  // A Set iterates in insertion order: its first entry is the oldest waiting socket.
  const waiting = new Set<S>();
  const acknowledged = new Set<S>();
  const held = () => waiting.size + acknowledged.size;

  return {
    hasRoom: () => held() < options.max || waiting.size > 0,
    add(socket) {
      if (held() >= options.max) {
        const oldest = waiting.values().next();
        if (oldest.done === true) return false;
        waiting.delete(oldest.value);
        options.evict(oldest.value);
      }
      waiting.add(socket);
      return true;
    },
    acknowledged(socket) {
      // A socket closed to make room is no longer waiting: it never gets a place back.
      if (waiting.delete(socket)) acknowledged.add(socket);
    },
    closed(socket) {
      waiting.delete(socket);
      acknowledged.delete(socket);
    },
  };
}
