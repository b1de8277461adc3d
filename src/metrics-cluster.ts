/**
 * How many instances of each role reported to the cluster recently (`metrics.ts` puts the gauge
 * on its registry), read at scrape time from the instances' reports (`start/dashboard.ts` sets the
 * reader). Every process exports it, whatever its role: a server sees that no workers process is
 * left — none of them can say so once they are all down — so a rule on
 * `tributary_cluster_instances{role=~"workers|all"}` fires where every workers metric just vanishes.
 */
import { Gauge, type Registry } from 'prom-client';

/** The roles exported, each always (0 when none reported): a bounded label, whatever a report says. */
export const CLUSTER_ROLES = ['all', 'server', 'workers'] as const;

/** A scrape waits this long for the reports (Redis); without them the gauge is left out, never guessed. */
const READ_TIMEOUT_MS = 2_000;

/** Instances that reported recently, by role. */
export type InstancesByRole = Readonly<Record<string, number>>;

export interface ClusterMetrics {
  /** Instances that reported within the last three dashboard ticks, by role (`all`, `server`, `workers`). */
  readonly clusterInstances: Gauge<'role'>;
  /** Sets where the counts are read at scrape time; returns the function that unsets it. */
  sampleCluster(read: () => Promise<InstancesByRole>): () => void;
}

export function createClusterMetrics(registry: Registry): ClusterMetrics {
  let reader: (() => Promise<InstancesByRole>) | undefined;
  const read = async (): Promise<InstancesByRole | undefined> => {
    if (reader === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), READ_TIMEOUT_MS)));
    try {
      return await Promise.race([reader(), late]);
    } catch {
      // The reports cannot be read (Redis away): no figure rather than a 0 that would page.
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    clusterInstances: new Gauge({
      name: 'tributary_cluster_instances',
      help: 'Instances that reported to the cluster within the last three dashboard ticks, by role (every process exports the whole cluster; absent when the reports cannot be read)',
      labelNames: ['role'],
      registers: [registry],
      async collect() {
        const counts = await read();
        this.reset();
        if (counts === undefined) return;
        for (const role of CLUSTER_ROLES) this.set({ role }, counts[role] ?? 0);
      },
    }),
    sampleCluster(next) {
      reader = next;
      return () => {
        if (reader === next) reader = undefined;
      };
    },
  };
}
