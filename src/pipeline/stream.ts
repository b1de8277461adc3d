import { scopeKey, type Scope } from './scope.ts';

/** One topic in one scope: the unit that has a log, an epoch and a live channel. */
export interface StreamRef {
  readonly scope: Scope;
  readonly topic: string;
  /** Unique per (scope, topic); safe as a map key and inside Redis keys. */
  readonly key: string;
}

export function streamOf(scope: Scope, topic: string): StreamRef {
  return { scope, topic, key: `${scopeKey(scope)}|${topic}` };
}
