/**
 * `joinChannel(name, { onMessage })`: membership of a channel — live broadcasts (typing, presence,
 * cursors), not logged, not resumable — on the client's socket, with its token refresh, backoff
 * and states. Joined again on every new socket; what was broadcast while no socket was up is not
 * delivered (channels are at most once). A refusal a retry would meet again (FORBIDDEN — also
 * `PERMISSION_REVOKED` after a refreshed token lost the channel —, BAD_USER_INPUT) ends the
 * membership (`onError`); one the client retries (UNAVAILABLE, RATE_LIMITED…) is waited out with
 * backoff (`onRetry`), as for every subscription (resumable.ts).
 */
import type { Connection } from './connection.ts';
import { TributaryChannelDocument } from './generated.ts';
import { createRetryGate, runResumable } from './resumable.ts';
import { createRetryReport } from './retry-report.ts';

/** A broadcast as a member receives it. `data` is what the sender passed, typed as the caller says (not checked). */
export interface ChannelMessage<T = unknown> {
  readonly channel: string;
  readonly event: string;
  readonly data: T;
}

export interface JoinChannelOptions<T = unknown> {
  /** Each broadcast received while joined, in the order the server sends them. */
  readonly onMessage: (message: ChannelMessage<T>) => void;
  /** The membership ended for good: FORBIDDEN (no `<prefix>.join`; `isPermissionRevoked(error)` after a refresh), BAD_USER_INPUT (the name). */
  readonly onError?: (error: unknown) => void;
  /**
   * Not joined for now, but not ended: a refusal the client retries (UNAVAILABLE — Redis away —,
   * RATE_LIMITED, INTERNAL_SERVER_ERROR…), or the connection turned `unauthorized` until `reconnect()`.
   */
  readonly onRetry?: (error: Error) => void;
  /** Joined again after `onRetry`: a message arrived, or the server answered a probe sent after the retried join without refusing it. */
  readonly onResume?: () => void;
}

export interface ChannelMembership {
  /** Leaves the channel (on this socket and every later one). Idempotent. */
  close(): void;
}

export function joinChannel<T = unknown>(connection: Connection, name: string, options: JoinChannelOptions<T>): ChannelMembership {
  const controller = new AbortController();
  /** Its refusals told (`failed`: ended for good, joined on no further socket). */
  const report = createRetryReport(options);
  const gate = createRetryGate();

  const stop = connection.use({
    attach: (session) => {
      if (report.failed) return;
      void runResumable(connection, session, controller.signal, {
        gate,
        run: async (current, signal, delivered) => {
          const streaming = current.stream(TributaryChannelDocument, { name }, ({ channel: message }) => {
            delivered();
            report.resumed();
            options.onMessage({ channel: message.channel, event: message.event, data: message.data as T });
          }, signal);
          report.probe(current, streaming, signal);
          await streaming;
        },
        // Nothing is kept, so nothing to refetch (the server never answers RESYNC_REQUIRED here).
        resync: () => Promise.resolve(),
        retrying: report.interrupted,
        fail: report.fail,
      });
    },
    unauthorized: report.interrupted,
    tokenRefused: report.interrupted,
    // A new login: the next socket joins as the new user (refused if they may not join).
    reset: () => {
      gate.notBefore = 0;
    },
  });

  return {
    close() {
      stop();
      controller.abort();
    },
  };
}
