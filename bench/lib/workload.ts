/**
 * The contract between the runner (`bench/run.ts`) and a workload (`bench/workloads/*.ts`).
 * A workload starts its servers through the context, so the runner can stop them whatever
 * happens; it prints its own tables through `report.ts`.
 */
import type { PeerName } from '../peers/peer.ts';
import type { PeerProcess, PeerProcessOptions } from './peer-process.ts';

export interface WorkloadContext {
  /** `--quick`: a shortened run that only proves the workload works end to end. */
  readonly quick: boolean;
  /** Measurements per peer, taken alternately (ours, peer, ours, peer…). @default 2 */
  readonly rounds: number;
  /** Starts a peer server in its own process; the runner stops it at the end, even on failure. */
  startPeer(name: PeerName, options?: PeerProcessOptions): Promise<PeerProcess>;
  /** Registers a cleanup step the runner runs at the end, even on failure (reverse order). */
  defer(name: string, step: () => Promise<void>): void;
  /**
   * Records that a peer, an arm or the whole workload was not measured for want of something
   * outside the benchmark (a binary not installed: `redis-server`), and prints it. The run then
   * exits non-zero unless `--allow-skip` was given: a table missing a row must not pass for a
   * complete run. Call it through `skip()`, which throws where a context has none (a test's).
   */
  readonly skip?: (what: string, why: string) => void;
}

/** `context.skip`, or — for a context that cannot record a skip — an error: a skip is never silent. */
export function skip(context: WorkloadContext, what: string, why: string): void {
  if (!context.skip) throw new Error(`${what}: not measured (${why})`);
  context.skip(what, why);
}

export interface Workload {
  /** What `npm run bench -- <name>` selects. */
  readonly name: string;
  /** One line, printed above the workload's tables. */
  readonly description: string;
  run(context: WorkloadContext): Promise<void>;
}
