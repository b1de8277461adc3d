/**
 * Boots one server per peer, one after another: Tributary's embedded database takes seconds to
 * start, and several booting together on a loaded 2-core machine can take minutes (and skew each
 * other). Boot time is printed, never measured. A peer that does not start is no reason to stop
 * the others: its entry says why instead.
 */
import type { PeerName } from '../peers/peer.ts';
import type { PeerProcess, PeerProcessOptions } from './peer-process.ts';
import { messageOf, print } from './report.ts';
import { formatMillis } from './stats.ts';
import type { WorkloadContext } from './workload.ts';

export interface BootOptions {
  /** What each server is started with (its environment). @default {} */
  readonly optionsOf?: (name: PeerName) => PeerProcessOptions | Promise<PeerProcessOptions>;
  /** Run on each server once it listens (e.g. configure it); a failure stops that server. */
  readonly ready?: (peer: PeerProcess) => Promise<void>;
  /** Starts the printed line. @default 'servers ready' */
  readonly label?: string;
}

/** Per name, in order: the running server, or why it could not be started. */
export async function bootPeers(context: WorkloadContext, names: readonly PeerName[], options: BootOptions = {}): Promise<(PeerProcess | string)[]> {
  const results: (PeerProcess | string)[] = [];
  const boots: string[] = [];
  for (const name of names) {
    const started = performance.now();
    let peer: PeerProcess | undefined;
    try {
      peer = await context.startPeer(name, { startTimeoutMs: 120_000, ...(await options.optionsOf?.(name)) });
      await options.ready?.(peer);
      boots.push(`${name} ${formatMillis(performance.now() - started)}`);
      results.push(peer);
    } catch (error) {
      await peer?.stop();
      results.push(`could not start: ${messageOf(error)}`);
    }
  }
  print(`${options.label ?? 'servers ready'} (one at a time; boot time not measured): ${boots.join(', ')}`);
  return results;
}
