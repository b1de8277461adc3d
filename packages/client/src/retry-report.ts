/**
 * What a subscription tells its application of the refusals the client retries for it
 * (resumable.ts): `onRetry` when it is not served for now (a retried refusal, or the connection
 * `unauthorized`), `onResume` once it is served again, `onError` once when it ends for good — and
 * nothing more after that. Served again means a message arrived, or, after a refusal only, the
 * server answered a probe sent behind the retried subscribe without refusing it (`probe`): one
 * round trip, not one per subscription per socket.
 */
import type { Session } from './session.ts';

export interface RetryReportOptions {
  readonly onRetry?: ((error: Error) => void) | undefined;
  readonly onResume?: (() => void) | undefined;
  readonly onError?: ((error: unknown) => void) | undefined;
}

export interface RetryReport {
  /** Ended for good (`fail`): subscribed on no further socket. */
  readonly failed: boolean;
  /** Not served for now: `onRetry`, unless it ended. */
  readonly interrupted: (error: Error) => void;
  /** Served: `onResume` if `onRetry` was told since it last was. */
  readonly resumed: () => void;
  /** Ended for good: `onError`. */
  readonly fail: (error: unknown) => void;
  /** After a refusal only: resumed once `session` answers a probe while `streaming` still runs. */
  readonly probe: (session: Session, streaming: Promise<void>, signal: AbortSignal) => void;
}

export function createRetryReport(options: RetryReportOptions): RetryReport {
  let failed = false;
  /** `onRetry` was told, and the subscription was not served since. */
  let retrying = false;
  const report: RetryReport = {
    get failed() {
      return failed;
    },
    interrupted: (error) => {
      if (failed) return;
      retrying = true;
      options.onRetry?.(error);
    },
    resumed: () => {
      if (!retrying || failed) return;
      retrying = false;
      options.onResume?.();
    },
    fail: (error) => {
      failed = true;
      options.onError?.(error);
    },
    probe: (session, streaming, signal) => {
      if (!retrying) return;
      let running = true;
      const settled = () => void (running = false);
      void streaming.then(settled, settled);
      void session.roundTrip(signal).then(() => running && report.resumed(), () => {});
    },
  };
  return report;
}
