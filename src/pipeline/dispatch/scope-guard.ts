import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { RealtimeEvent } from '../events/envelope.ts';
import { scopeKey } from '../scope.ts';
import type { StreamRef } from '../stream.ts';

/**
 * Tenant isolation's second check (docs/architecture.md §5). Stream keys include the scope, so an
 * event reaches a stream's subscribers only when a producer placed it on that stream; one whose
 * own scope says another (a producer that computed the wrong stream) is dropped before any of
 * them sees it. Called once per event per stream where events enter the fan-out (live delivery,
 * the outage catch-up) and once per event a resume reads from the log.
 */
export type ScopeGuard = (stream: StreamRef, event: RealtimeEvent) => boolean;

export interface ScopeGuardOptions {
  readonly logger: Logger;
  /** @default no metrics */
  readonly metrics?: Pick<Metrics, 'eventsOutOfScope'> | undefined;
}

export function createScopeGuard(options: ScopeGuardOptions): ScopeGuard {
  const { logger, metrics } = options;
  return (stream, event) => {
    // The three parts, not the scope keys: equal parts are equal keys (`scopeKey` is injective),
    // and the hot path builds no string.
    const own = stream.scope;
    const said = event.metadata.scope;
    if (said.app === own.app && said.env === own.env && said.tenant === own.tenant) return true;
    logger.error(
      { topic: stream.topic, eventId: event.id, streamScope: scopeKey(own), eventScope: scopeKey(said) },
      "event dropped: its scope is not its stream's (a producer placed it on another scope's stream)",
    );
    metrics?.eventsOutOfScope.inc();
    return false;
  };
}
