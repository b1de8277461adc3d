/**
 * Rules over figures of the whole cluster — active connections (the seed's > 10,000 warning) and
 * resync storms — which need every instance's counts: the dashboard's instance reports provide
 * them (`pipeline/dashboard/cluster-figures.ts`). With no report yet the provider has none and
 * these rules read unknown, which neither fires nor resolves. Their alerts live in the operators'
 * environment (`OPERATOR_SCOPE`); one left in another environment (OPERATOR_SCOPE changed) is
 * gone — no figure will ever come to it — so it resolves.
 */
import { scopeKey, type Scope } from '../../scope.ts';
import { judgeLimit, type AlertRule, type Verdict } from '../alert-rule.ts';

/** What the cluster's instances reported, summed over all of them. */
export interface ClusterFigures {
  /** Open graphql-ws sockets now. */
  readonly connections: number;
  /**
   * RESYNC_REQUIRED answers given in the window, each instance counting its own; null when some
   * instance does not count over this window (an earlier version, another window while a deploy is
   * under way): the storm rule reads unknown.
   */
  readonly resyncs: number | null;
}

/** Where cluster figures come from; undefined when no instance reports any (yet). */
export interface ClusterFiguresProvider {
  read(windowMs: number): Promise<ClusterFigures | undefined>;
}

/** No figures: the cluster rules read unknown (tests of the other rules). */
export const NO_CLUSTER_FIGURES: ClusterFiguresProvider = { read: () => Promise.resolve(undefined) };

export interface ClusterThresholds {
  /** @default 10000 */
  readonly maxConnections: number;
  /** Resyncs in the window above this are a storm. @default 1000 */
  readonly maxResyncs: number;
}

/** Judges a count against a limit (warning above it, good at or under 90 % of it): pure. */
export function judgeCount(count: number, max: number, what: string): Verdict {
  return judgeLimit(count, max, { severity: 'warning', message: `${count} ${what} (limit ${max})` });
}

function clusterRule(name: string, description: string, provider: ClusterFiguresProvider, scope: Scope, judge: (figures: ClusterFigures) => Verdict): AlertRule {
  return {
    name,
    description,
    async read({ windowMs }) {
      const figures = await provider.read(windowMs);
      return figures === undefined ? [] : [{ subject: 'cluster', scope, verdict: judge(figures) }];
    },
    gone(subjects) {
      return Promise.resolve(subjects.filter((subject) => scopeKey(subject.scope) !== scopeKey(scope)).map((subject) => ({ subject })));
    },
  };
}

export function clusterRules(provider: ClusterFiguresProvider, scope: Scope, thresholds: ClusterThresholds): AlertRule[] {
  return [
    clusterRule('cluster.connections', 'Open sockets across the cluster', provider, scope, (f) => judgeCount(f.connections, thresholds.maxConnections, 'open connections')),
    clusterRule('cluster.resync_storm', 'RESYNC_REQUIRED answers across the cluster over the window', provider, scope, (f) =>
      f.resyncs === null
        ? { kind: 'unknown', reason: 'not every instance counts its resyncs over this window, or at all' }
        : judgeCount(f.resyncs, thresholds.maxResyncs, 'resyncs in the window'),
    ),
  ];
}
