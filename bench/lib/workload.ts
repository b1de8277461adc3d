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
}

export interface Workload {
  /** What `npm run bench -- <name>` selects. */
  readonly name: string;
  /** One line, printed above the workload's tables. */
  readonly description: string;
  run(context: WorkloadContext): Promise<void>;
}
