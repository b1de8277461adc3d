/**
 * Interleaved measurement: ours, peer, ours, peer… so that drift on a shared machine (another
 * tenant's job, thermal limits, a GC-heavy neighbour) lands on every peer alike instead of on
 * whichever happened to run second. Reports take the median over rounds.
 */
import type { PeerName } from '../peers/peer.ts';

export async function alternateRounds<T>(
  peers: readonly PeerName[],
  rounds: number,
  measure: (peer: PeerName, round: number) => Promise<T>,
): Promise<Map<PeerName, T[]>> {
  const results = new Map<PeerName, T[]>(peers.map((peer) => [peer, []]));
  for (let round = 0; round < rounds; round += 1) {
    for (const peer of peers) results.get(peer)?.push(await measure(peer, round));
  }
  return results;
}
