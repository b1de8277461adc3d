import { ErrorCode, TributaryError } from '../../errors.ts';
import type { AuthRefresh, SocketSessions } from '../../resolvers/context.ts';

/** This process's acknowledged sockets by connection id, as the resolvers reach them (`refreshAuth`). */
export interface SocketSessionRegistry extends SocketSessions {
  /** Registers a socket's refresh; the returned function removes it (the socket closed). */
  add(connectionId: string, refresh: (token: string) => Promise<AuthRefresh>): () => void;
}

export function createSocketSessions(): SocketSessionRegistry {
  const sessions = new Map<string, (token: string) => Promise<AuthRefresh>>();
  return {
    add(connectionId, refresh) {
      sessions.set(connectionId, refresh);
      return () => {
        if (sessions.get(connectionId) === refresh) sessions.delete(connectionId);
      };
    },
    refreshAuth(connectionId, token) {
      const refresh = sessions.get(connectionId);
      if (!refresh) return Promise.reject(new TributaryError(ErrorCode.UNAUTHENTICATED, 'The socket is closing'));
      return refresh(token);
    },
  };
}
