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

/**
 * The order of round `round` (from 1): as given in odd rounds, reversed in even ones. For
 * measurements one after another on shared state (a table refilled, the machine's drift over a
 * minute): what comes of running first or last falls on each of them in turn.
 */
export function alternatingOrder<T>(items: readonly T[], round: number): T[] {
  return round % 2 === 1 ? [...items] : [...items].reverse();
}

/** A session measured at several rates: it stops being measured once it failed or dropped out. */
export interface RateMember<N extends string> {
  readonly name: N;
  readonly failure: string | undefined;
  readonly dropped: string | undefined;
}

export interface RateRounds<N extends string, R> {
  /** By rate, then by member: the rounds measured. */
  readonly results: Map<number, Map<N, R[]>>;
  /** By rate: why a member was not measured there. */
  readonly skipped: Map<number, Map<N, string>>;
}

/**
 * Every rate in turn, `rounds` rounds at each, the members alternating within a round (as
 * `alternateRounds`); a member that failed or dropped out is skipped from then on, with the reason.
 */
export async function roundsPerRate<N extends string, M extends RateMember<N>, R>(
  members: readonly M[],
  rates: readonly number[],
  rounds: number,
  measure: (member: M, rate: number) => Promise<R | undefined>,
): Promise<RateRounds<N, R>> {
  const results = new Map<number, Map<N, R[]>>(rates.map((rate) => [rate, new Map(members.map((member) => [member.name, []]))]));
  const skipped = new Map<number, Map<N, string>>(rates.map((rate) => [rate, new Map()]));
  for (const rate of rates) {
    for (let round = 0; round < rounds; round += 1) {
      for (const member of members) {
        const reason = member.failure ?? member.dropped;
        if (reason !== undefined) {
          skipped.get(rate)?.set(member.name, reason);
          continue;
        }
        const result = await measure(member, rate);
        if (result !== undefined) results.get(rate)?.get(member.name)?.push(result);
      }
    }
  }
  return { results, skipped };
}
