import { parseScopeKey, scopeKey, type Scope } from './scope.ts';

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

/** The inverse of `streamOf(…).key`; undefined for text that is not a stream key. */
export function parseStreamKey(key: string): { scope: Scope; topic: string } | undefined {
  const bar = key.indexOf('|');
  if (bar < 0) return undefined;
  const scope = parseScopeKey(key.slice(0, bar));
  return scope && { scope, topic: key.slice(bar + 1) };
}
