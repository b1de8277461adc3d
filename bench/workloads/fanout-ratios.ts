/**
 * The fan-out workload's ratio lines: each of ours against each reference stack (yoga + graphql-ws,
 * and the lighter graphql-ws + graphql-js + graphql-subscriptions) and against the floor, per
 * section; a fixed-load ratio with a side not run at the offered load is ✗, and every CPU figure
 * says at which rate it was taken. Then what subscribers that do not share an operation cost each
 * peer, the two sections side by side.
 */
import { LIGHT_REFERENCE, LIMIT, OURS, REFERENCE, type PeerName } from '../peers/peer.ts';
import { notComparable, print, printRatioLine, type Ratio } from '../lib/report.ts';
import { bestStep, formatEvents, formatKb, perConnection, summarizeFixed, type FanoutSettings, type PeerOutcome } from './fanout-report.ts';

/** Ours in both modes: the rows the ratio lines start from. */
export const OURS_PEERS: readonly PeerName[] = [OURS, 'tributary-redis'];
/** What ours are compared with: the two Node GraphQL stacks, then the floor. */
const COMPARED: readonly PeerName[] = [REFERENCE, LIGHT_REFERENCE, LIMIT];

const heap = (outcome: PeerOutcome | undefined) => perConnection(outcome, (memory) => memory.heapUsed);

/** heap/conn of `a` over `b`'s, ✗ when either is not a positive figure (a collection moved more than the sockets held). */
function heapRatio(a: PeerOutcome, b: PeerOutcome, bName: string = b.name): Ratio {
  const [x, y] = [heap(a), heap(b)];
  const bad = [...(x > 0 ? [] : [a.name]), ...(y > 0 ? [] : [bName])];
  return { metric: 'heap/conn', value: x / y, invalid: bad.length > 0 ? `heap/conn of ${bad.join(' and ')} not above 0: not measured` : undefined };
}

/** The ratios of `ours` to `peer` in one section. */
export function ratiosOf(ours: PeerOutcome, peer: PeerOutcome, settings: Pick<FanoutSettings, 'fixedRate'>): Ratio[] {
  const [oursBest, peerBest] = [bestStep(ours), bestStep(peer)];
  const [oursFixed, peerFixed] = [summarizeFixed(ours), summarizeFixed(peer)];
  const missing = (name: string, what: string) => `${name}: no ${what}`;
  const saturationInvalid = !oursBest ? missing(ours.name, 'rate kept up with') : !peerBest ? missing(peer.name, 'rate kept up with') : undefined;
  const fixedInvalid =
    !oursFixed || !peerFixed
      ? missing(!oursFixed ? ours.name : peer.name, 'fixed-load round')
      : notComparable(ours.name, oursFixed.shortfall, peer.name, peerFixed.shortfall);
  const limits = `${formatEvents(oursBest?.rate ?? Number.NaN)} vs ${formatEvents(peerBest?.rate ?? Number.NaN)} ev/s`;
  return [
    { metric: 'saturation msgs/s', value: (oursBest?.deliveredPerSecond ?? Number.NaN) / (peerBest?.deliveredPerSecond ?? Number.NaN), invalid: saturationInvalid },
    {
      metric: `per core @ own limits (${limits})`,
      value: (peerBest?.serverCpuPerMessage ?? Number.NaN) / (oursBest?.serverCpuPerMessage ?? Number.NaN),
      invalid: saturationInvalid,
    },
    { metric: `@ ${settings.fixedRate} ev/s: p50`, value: (oursFixed?.p50 ?? Number.NaN) / (peerFixed?.p50 ?? Number.NaN), invalid: fixedInvalid },
    { metric: 'p99', value: (oursFixed?.p99 ?? Number.NaN) / (peerFixed?.p99 ?? Number.NaN), invalid: fixedInvalid },
    { metric: 'CPU/msg', value: (oursFixed?.serverCpu ?? Number.NaN) / (peerFixed?.serverCpu ?? Number.NaN), invalid: fixedInvalid },
    heapRatio(ours, peer),
  ];
}

export function reportRatios(outcomes: readonly PeerOutcome[], settings: FanoutSettings, section: string): void {
  print();
  print(
    `ratios (${section}; ours/peer — saturation and per core above 1× are better, latency, CPU and memory below 1×; ` +
      `per core is taken at each server's own limit, CPU/msg at the same fixed rate for both):`,
  );
  const find = (name: PeerName) => outcomes.find((outcome) => outcome.name === name);
  for (const oursName of OURS_PEERS) {
    const ours = find(oursName);
    if (!ours) continue;
    for (const peerName of COMPARED) {
      const peer = find(peerName);
      if (peer) printRatioLine(oursName, peerName, ratiosOf(ours, peer, settings));
    }
  }
  const lighter = lighterReference(find(REFERENCE), find(LIGHT_REFERENCE));
  if (lighter) print(`  the lighter of the two GraphQL stacks here (less CPU/msg @ ${settings.fixedRate} ev/s): ${lighter}`);
  print(
    `  targets (context, not asserted): saturation ≥ 10× ${REFERENCE} and ≥ 0.5× ${LIMIT}; ≤ 10 KB per connection with one subscription ` +
      `(${OURS}: ${formatKb(heap(find(OURS)))} heap)`,
  );
}

/** The reference stack with less server CPU per message at the fixed load; undefined when either is missing. */
function lighterReference(yoga: PeerOutcome | undefined, plain: PeerOutcome | undefined): PeerName | undefined {
  const [a, b] = [summarizeFixed(yoga ?? emptyOutcome(REFERENCE))?.serverCpu, summarizeFixed(plain ?? emptyOutcome(LIGHT_REFERENCE))?.serverCpu];
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) return undefined;
  return a <= b ? REFERENCE : LIGHT_REFERENCE;
}

function emptyOutcome(name: PeerName): PeerOutcome {
  return { name, session: undefined, failure: undefined, fixed: [], steps: [] };
}

/**
 * What subscribers that do not share an operation cost each peer: its distinct-operations figures
 * over its one-shared-operation figures, the same server in the same run.
 */
export function reportSectionCost(shared: readonly PeerOutcome[], distinct: readonly PeerOutcome[], settings: FanoutSettings): void {
  print();
  print('distinct operations ÷ one shared operation, per peer (the same server; saturation below 1× and CPU above 1× is what sharing saved):');
  for (const outcome of distinct) {
    const before = shared.find((candidate) => candidate.name === outcome.name);
    if (!before) continue;
    const [sharedFixed, distinctFixed] = [summarizeFixed(before), summarizeFixed(outcome)];
    printRatioLine(outcome.name, 'shared', [
      {
        metric: 'saturation msgs/s',
        value: (bestStep(outcome)?.deliveredPerSecond ?? Number.NaN) / (bestStep(before)?.deliveredPerSecond ?? Number.NaN),
      },
      {
        metric: `CPU/msg @ ${settings.fixedRate} ev/s`,
        value: (distinctFixed?.serverCpu ?? Number.NaN) / (sharedFixed?.serverCpu ?? Number.NaN),
        invalid: notComparable('distinct', distinctFixed?.shortfall, 'shared', sharedFixed?.shortfall),
      },
      heapRatio(outcome, before, 'shared'),
    ]);
  }
}
