/**
 * The `cdc` workload's tables and ratio lines, and what makes the run fail: a peer that could
 * not be measured (crash, error), or one of ours delivering a row twice, out of commit order or
 * to another tenant. A peer that could not keep up (rows still missing when the wait ended,
 * sockets closed as slow consumers) is a result, not a failure.
 */
import type { PeerName } from '../peers/peer.ts';
import type { BulkCommit } from '../lib/row-writer.ts';
import { notComparable, print, printRatioLine, printTable } from '../lib/report.ts';
import { formatMicros, formatMillis, formatRate, median } from '../lib/stats.ts';
import type { BurstResult, StepResult } from './fanout-session.ts';
import { summarizeRounds, type RoundsSummary } from './rounds-summary.ts';

/** One measured step, with what the peer's platform database cost Postgres meanwhile. */
export interface CommitRound {
  readonly step: StepResult;
  /** CPU of the Postgres backends of Tributary's platform database over the step, in µs; NaN for a peer without one. */
  readonly platformCpuMicros: number;
}

/** One peer at one rate of a single-row group. */
export interface CommitOutcome {
  readonly name: PeerName;
  readonly rounds: readonly CommitRound[];
  /** It could not be measured at all. */
  readonly failure: string | undefined;
  /** Why it was not measured at this rate (stopped at an earlier step). */
  readonly skipped: string | undefined;
}

export interface CommitTable {
  readonly topics: number;
  readonly subscribers: number;
  readonly rate: number;
  readonly seconds: number;
  readonly rounds: number;
}

interface CommitSummary extends RoundsSummary {
  /** CPU of Tributary's platform database per commit, in µs; NaN without one. */
  readonly platformPerCommit: number;
}

function summarizeCommits(measured: readonly CommitRound[]): CommitSummary | undefined {
  const summary = summarizeRounds(measured.map((round) => round.step));
  return summary && { ...summary, platformPerCommit: median(measured.map((round) => round.platformCpuMicros / round.step.events)) };
}

/** Prints one rate's table and ratio lines; returns what makes the run fail. */
export function reportCommits(outcomes: readonly CommitOutcome[], table: CommitTable, ours: readonly PeerName[], reference: PeerName): string[] {
  const { topics, subscribers, rate } = table;
  const perTopic = subscribers / topics;
  const summaries = new Map(outcomes.map((outcome) => [outcome.name, summarizeCommits(outcome.rounds)]));
  print();
  printTable({
    title:
      `${topics === 1 ? 'one topic' : `${topics} topics (tenants)`}, ${subscribers.toLocaleString('en-US')} subscribers (${perTopic.toLocaleString('en-US')} per topic): ` +
      `single-row commits at ${rate.toLocaleString('en-US')}/s (${(rate * perTopic).toLocaleString('en-US')} msgs/s) for ${table.seconds} s; median of the rounds measured (of ${table.rounds})`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'commits/s' },
      { header: 'commit→sub p50' },
      { header: 'p99' },
      { header: 'commit p50' },
      { header: 'delivered/expected' },
      { header: 'server CPU/commit' },
      { header: 'Redis CPU/commit' },
      { header: 'platform DB CPU/commit' },
      { header: 'zero loss', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const m = summaries.get(outcome.name);
      if (!m) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', `✗ not measured: ${outcome.failure ?? outcome.skipped ?? '?'}`];
      return [
        outcome.name,
        m.achieved.toFixed(1),
        formatMicros(m.p50),
        formatMicros(m.p99),
        formatMicros(m.answeredP50),
        `${m.delivered.toLocaleString('en-US')}/${m.expected.toLocaleString('en-US')}`,
        formatMicros(m.cpuPerEvent),
        formatMicros(m.redisCpuPerEvent),
        formatMicros(m.platformPerCommit),
        m.zeroLoss ? '✓' : `✗ ${m.problem ?? '?'}`,
      ];
    }),
    notes: [
      `commits/s: made, one INSERT (autocommit) in flight; below ${rate} when a commit takes longer than the interval`,
      'commit→sub: INSERT due (its place in the schedule, however late the writer got to send it) → the subscriber\'s `next` (clocks of two processes on one machine); commit: INSERT sent → committed (answered)',
      'delivered/expected: rows received by all subscribers of their tenant, over the rounds measured; zero loss: every subscriber got every row of its tenant exactly once, in commit order, and none of another',
      'server CPU/commit: the server process over the step ÷ commits (decode, route, fan-out); Redis: redis-server over the step ÷ commits; platform DB: the Postgres backends of Tributary\'s own database (raw changes, reader status); walsenders not counted',
      `the other peer is left running (its WAL reader's replication connection would time out if paused): its server and load client used ${formatCores(bystanders(outcomes))} cores at most during a step (in no column)`,
    ],
  });
  const failures: string[] = [];
  for (const outcome of outcomes) {
    if (outcome.failure !== undefined) failures.push(`${outcome.name} (${topics} topics, ${rate}/s): ${outcome.failure}`);
    const wrong = summaries.get(outcome.name)?.wrong;
    if (ours.includes(outcome.name) && wrong !== undefined) failures.push(`${outcome.name} (${topics} topics, ${rate}/s): ${wrong}`);
  }
  const peer = summaries.get(reference);
  for (const name of ours) {
    const m = summaries.get(name);
    if (!m || !peer) continue;
    // A side that did not get (or deliver) the offered rate was measured under another load.
    const invalid = notComparable(name, m.shortfall, reference, peer.shortfall);
    printRatioLine(name, reference, [
      { metric: 'commit→sub p50', value: m.p50 / peer.p50, invalid },
      { metric: 'p99', value: m.p99 / peer.p99, invalid },
      { metric: 'server CPU/commit', value: m.cpuPerEvent / peer.cpuPerEvent, invalid },
      { metric: 'all CPU/commit (server+Redis+platform DB)', value: allCpu(m) / allCpu(peer), invalid },
    ]);
  }
  return failures;
}

/** The most the other peers' processes used during one step of these outcomes, in cores. */
function bystanders(outcomes: readonly CommitOutcome[]): number {
  return Math.max(0, ...outcomes.flatMap((outcome) => outcome.rounds.map((round) => round.step.bystandersBusy)).filter(Number.isFinite));
}

function formatCores(cores: number): string {
  return cores.toFixed(2);
}

/** Server, Redis and platform database CPU per commit, in µs. */
function allCpu(summary: CommitSummary): number {
  return summary.cpuPerEvent + summary.redisCpuPerEvent + (Number.isFinite(summary.platformPerCommit) ? summary.platformPerCommit : 0);
}

/** One peer's big transaction. */
export interface BulkOutcome {
  readonly name: PeerName;
  readonly rows: number;
  failure: string | undefined;
  result: BurstResult<unknown> | undefined;
  commit: BulkCommit | undefined;
  /** `clockMillis()` when the slot had confirmed the commit; NaN if it did not in time. */
  caughtUpAt: number;
  /** CPU of the Postgres backends of Tributary's platform database meanwhile, in µs; NaN for a peer without one. */
  platformCpuMicros: number;
}

/** Prints the big transaction's table and ratio lines; returns what makes the run fail. */
export function reportBulk(outcomes: readonly BulkOutcome[], ours: readonly PeerName[], reference: PeerName): string[] {
  const rows = outcomes[0]?.rows ?? 0;
  interface BulkSummary {
    readonly rowsPerSecond: number;
    readonly caughtUpMs: number;
    readonly cpuPerRow: number;
  }
  const summaries = new Map<PeerName, BulkSummary>();
  const failures: string[] = [];
  print();
  printTable({
    title: `one transaction of ${rows.toLocaleString('en-US')} rows (INSERT … SELECT generate_series), one subscriber; one peer at a time`,
    columns: [
      { header: 'peer', align: 'left' },
      { header: 'insert+commit' },
      { header: 'first row' },
      { header: 'last row' },
      { header: 'decode rows/s' },
      { header: 'slot caught up' },
      { header: 'server CPU/row' },
      { header: 'Redis CPU/row' },
      { header: 'platform DB CPU/row' },
      { header: 'delivered/expected' },
      { header: 'exactly once, in order', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const { result, commit } = outcome;
      if (!result || !commit) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', '—', `✗ not measured: ${outcome.failure ?? '?'}`];
      const { client } = result;
      const lastMs = client.lastReceiptAt - commit.committedAt;
      const summary: BulkSummary = {
        rowsPerSecond: client.received / (lastMs / 1000),
        caughtUpMs: outcome.caughtUpAt - commit.committedAt,
        cpuPerRow: result.serverCpuMicros / rows,
      };
      summaries.set(outcome.name, summary);
      const wrong = client.misrouted > 0 || client.duplicates > 0 || client.outOfOrder > 0;
      if (ours.includes(outcome.name) && wrong) failures.push(`${outcome.name} (big transaction): rows twice or out of order`);
      if (outcome.failure !== undefined) failures.push(`${outcome.name} (big transaction): ${outcome.failure}`);
      return [
        outcome.name,
        formatMillis(commit.committedAt - commit.startedAt),
        formatMillis(client.firstReceiptAt - commit.committedAt),
        formatMillis(lastMs),
        formatRate(summary.rowsPerSecond),
        Number.isFinite(summary.caughtUpMs) ? formatMillis(summary.caughtUpMs) : 'not in time',
        formatMicros(summary.cpuPerRow),
        formatMicros((result.redisCpuMicros ?? Number.NaN) / rows),
        formatMicros(outcome.platformCpuMicros / rows),
        `${client.received.toLocaleString('en-US')}/${(client.received + client.missing).toLocaleString('en-US')}`,
        wrong ? `✗ ${client.duplicates} twice, ${client.outOfOrder} out of order` : client.missing > 0 ? '✗ rows missing when the wait ended' : '✓',
      ];
    }),
    notes: [
      'first/last row: after COMMIT was answered, at the subscriber; decode rows/s: rows received ÷ (commit → last row)',
      "slot caught up: commit → the peer's slot confirmed_flush_lsn reached pg_current_wal_lsn() as of the commit (lag 0), polled every 10 ms",
      'pg-redis-graphql-ws acknowledges each message as the library receives it (its default), before publishing it; Tributary only after the events are in its log',
      'server CPU/row: the server process from before the transaction until the last row was received ÷ rows',
    ],
  });
  const peer = summaries.get(reference);
  for (const name of ours) {
    const m = summaries.get(name);
    if (!m || !peer) continue;
    printRatioLine(name, reference, [
      { metric: 'decode rows/s', value: m.rowsPerSecond / peer.rowsPerSecond },
      { metric: 'slot caught up', value: m.caughtUpMs / peer.caughtUpMs },
      { metric: 'server CPU/row', value: m.cpuPerRow / peer.cpuPerRow },
    ]);
  }
  return failures;
}
