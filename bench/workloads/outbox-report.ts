/**
 * The `outbox` workload's tables, ratio lines and aims, and what makes the run fail: an arm that
 * could not be measured (crash, error; not the WAL arm of a server without WAL mode), a row
 * delivered twice, out of its entity's order or to another tenant, and a real poller that lost,
 * doubled or reordered a row of the backlog. An arm or a poller that is merely slow is a result.
 */
import { notComparable, print, printRatioLine, printTable } from '../lib/report.ts';
import { formatMicros, formatMillis, formatRate, formatRatio, median } from '../lib/stats.ts';
import type { DrainConfiguration, DrainOutcome } from './outbox-drain.ts';
import type { ArmName } from './outbox-setup.ts';
import type { StepResult } from './fanout-session.ts';
import { summarizeRounds, type RoundsSummary } from './rounds-summary.ts';

/** The aim of the WAL arm: its latencies at most this many times CDC's. */
export const WAL_AIM_RATIO = 1.2;
/** The aim of the real poller with 4 instances, in rows/s. */
export const DRAIN_AIM_ROWS_PER_SECOND = 20_000;
/** The rate at which the polling aim (p50 ≤ interval/2 + 5 ms) applies, in commits/s. */
export const POLL_AIM_RATE = 100;

/** One arm at one rate. */
export interface ArmOutcome {
  readonly name: ArmName;
  readonly rounds: readonly StepResult[];
  /** The mode the server reported in effect (`POLL`, `WAL`, `CDC`); undefined if it never ran. */
  readonly mode: string | undefined;
  /** `WAL mode unavailable: …`: the server has no WAL mode; reported, not a failure. */
  readonly unavailable: string | undefined;
  /** It could not be measured at all. */
  readonly failure: string | undefined;
  /** Why it was not measured at this rate (stopped at an earlier step). */
  readonly skipped: string | undefined;
}

export interface LatencyTable {
  readonly tenants: number;
  readonly rate: number;
  readonly seconds: number;
  readonly rounds: number;
  /** OUTBOX_POLL_INTERVAL_MS of the servers, in ms. */
  readonly pollIntervalMs: number;
}

/** Prints one rate's table, the aims and the ratio lines; returns what makes the run fail. */
export function reportLatency(outcomes: readonly ArmOutcome[], table: LatencyTable, baseline: ArmName): string[] {
  const { rate, pollIntervalMs } = table;
  const summaries = new Map(outcomes.map((outcome) => [outcome.name, summarizeRounds(outcome.rounds)]));
  const base = summaries.get(baseline);
  const pollAimMicros = (pollIntervalMs / 2 + 5) * 1000;
  const aimOf = (outcome: ArmOutcome, m: RoundsSummary): string => {
    if (outcome.name === 'outbox-poll') {
      if (rate !== POLL_AIM_RATE) return '—';
      if (m.shortfall !== undefined) return `p50 ≤ ${formatMicros(pollAimMicros)}: — not at the offered load`;
      return `p50 ≤ ${formatMicros(pollAimMicros)} ${m.p50 <= pollAimMicros ? '✓' : '✗'}`;
    }
    if (outcome.name === 'outbox-wal') {
      if (!base) return `p50, p99 ≤ ${formatRatio(WAL_AIM_RATIO)} ${baseline}: —`;
      if (notComparable(outcome.name, m.shortfall, baseline, base.shortfall) !== undefined) return `p50, p99 ≤ ${formatRatio(WAL_AIM_RATIO)} ${baseline}: — not comparable`;
      const met = m.p50 / base.p50 <= WAL_AIM_RATIO && m.p99 / base.p99 <= WAL_AIM_RATIO;
      return `p50, p99 ≤ ${formatRatio(WAL_AIM_RATIO)} ${baseline} ${met ? '✓' : '✗'}`;
    }
    return 'baseline';
  };
  print();
  printTable({
    title:
      `${table.tenants} tenants, one subscriber each: single-row transactions at ${rate.toLocaleString('en-US')}/s for ${table.seconds} s; ` +
      `median of the rounds measured (of ${table.rounds})`,
    columns: [
      { header: 'arm', align: 'left' },
      { header: 'mode' },
      { header: 'commits/s' },
      { header: 'commit→sub p50' },
      { header: 'p99' },
      { header: 'commit p50' },
      { header: 'delivered/expected' },
      { header: 'server CPU/commit' },
      { header: 'aim', align: 'left' },
      { header: 'zero loss', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const m = summaries.get(outcome.name);
      if (outcome.unavailable !== undefined) return [outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', outcome.unavailable];
      if (!m) return [outcome.name, outcome.mode ?? '—', '—', '—', '—', '—', '—', '—', '—', `✗ not measured: ${outcome.failure ?? outcome.skipped ?? '?'}`];
      return [
        outcome.name,
        outcome.mode ?? '?',
        m.achieved.toFixed(1),
        formatMicros(m.p50),
        formatMicros(m.p99),
        formatMicros(m.answeredP50),
        `${m.delivered.toLocaleString('en-US')}/${m.expected.toLocaleString('en-US')}`,
        formatMicros(m.cpuPerEvent),
        aimOf(outcome, m),
        m.zeroLoss ? '✓' : `✗ ${m.problem ?? '?'}`,
      ];
    }),
    notes: [
      `commits/s: made, one INSERT (its own transaction) in flight; below ${rate} when one takes longer than the interval`,
      "commit→sub: INSERT due (its place in the schedule, however late the writer got to send it) → the subscriber's `next` (clocks of two processes on one machine); commit: INSERT sent → committed (answered)",
      `outbox-poll polls every ${pollIntervalMs} ms (OUTBOX_POLL_INTERVAL_MS, the default) when a pass found no full batch: its latency is about half that on average, by design`,
      'zero loss: every subscriber got every row of its tenant exactly once, in commit order (a tenant\'s outbox rows are one entity), and none of another tenant\'s',
      'server CPU/commit: the Tributary process over the step ÷ commits (reading the source, routing, delivering); Postgres not counted',
      `the other arms are left running (a WAL reader's replication connection would time out if paused): their servers and load clients used ${bystanders(outcomes).toFixed(2)} cores at most during a step (in no column)`,
    ],
  });
  const failures: string[] = [];
  for (const outcome of outcomes) {
    if (outcome.failure !== undefined) failures.push(`${outcome.name} (${rate}/s): ${outcome.failure}`);
    const wrong = summaries.get(outcome.name)?.wrong;
    if (wrong !== undefined) failures.push(`${outcome.name} (${rate}/s): ${wrong}`);
  }
  for (const outcome of outcomes) {
    const m = summaries.get(outcome.name);
    if (outcome.name === baseline) continue;
    if (outcome.unavailable !== undefined) {
      print(`  ${outcome.name}/${baseline}  not measured: ${outcome.unavailable}`);
      continue;
    }
    if (!m || !base) continue;
    // A side that did not get (or deliver) the offered rate was measured under another load.
    const invalid = notComparable(outcome.name, m.shortfall, baseline, base.shortfall);
    printRatioLine(outcome.name, baseline, [
      { metric: 'commit→sub p50', value: m.p50 / base.p50, invalid },
      { metric: 'p99', value: m.p99 / base.p99, invalid },
      { metric: 'server CPU/commit', value: m.cpuPerEvent / base.cpuPerEvent, invalid },
    ]);
    if (outcome.name === 'outbox-wal') {
      const met = m.p50 / base.p50 <= WAL_AIM_RATIO && m.p99 / base.p99 <= WAL_AIM_RATIO;
      print(`    aim: p50 and p99 ≤ ${formatRatio(WAL_AIM_RATIO)} ${baseline}'s ${invalid === undefined ? (met ? '✓' : '✗') : '— not decidable: not comparable'}`);
    }
  }
  return failures;
}

/** The most the other arms' processes used during one step of these outcomes, in cores. */
function bystanders(outcomes: readonly ArmOutcome[]): number {
  return Math.max(0, ...outcomes.flatMap((outcome) => outcome.rounds.map((round) => round.bystandersBusy)).filter(Number.isFinite));
}

/** One configuration of the drain over the rounds, compared with the naive poller of each round. */
export interface DrainSummary {
  readonly configuration: DrainConfiguration;
  /** rows/s of each round it drained in, in round order. */
  readonly rates: readonly number[];
  /** The median of `rates`. */
  readonly rate: number;
  /** rows/s ÷ the naive poller's of the same round, per round where both were measured; empty for the naive poller. */
  readonly ratios: readonly number[];
  /** The median of `ratios` (NaN without any). */
  readonly ratio: number;
  /** Postgres CPU/row ÷ the naive poller's of the same round, likewise, and their median. */
  readonly postgresRatios: readonly number[];
  readonly postgresRatio: number;
}

/** rows/s of one drain: rows routed ÷ its time. */
export const drainRateOf = (outcome: DrainOutcome): number => outcome.routed / (outcome.elapsedMs / 1000);
const postgresPerRow = (outcome: DrainOutcome): number => outcome.postgresCpuMicros / outcome.routed;

/**
 * Per configuration (in the order first measured), its rate over the rounds and its ratios to the
 * naive poller taken within each round, then their median — the machine's speed drifts by tens of
 * percent from one minute to the next here, so a ratio of two rounds' medians would mix minutes.
 */
export function summarizeDrainRounds(outcomes: readonly DrainOutcome[]): DrainSummary[] {
  const naiveOf = (outcome: DrainOutcome) => outcomes.find((other) => other.configuration.kind === 'naive' && other.round === outcome.round);
  const names = [...new Set(outcomes.map((outcome) => outcome.configuration.name))];
  return names.map((name) => {
    const rounds = outcomes.filter((outcome) => outcome.configuration.name === name).sort((a, b) => a.round - b.round);
    const configuration = rounds[0]!.configuration;
    const within = (metric: (outcome: DrainOutcome) => number) =>
      configuration.kind === 'naive'
        ? []
        : rounds.flatMap((outcome) => {
            const naive = naiveOf(outcome);
            const value = naive ? metric(outcome) / metric(naive) : Number.NaN;
            return Number.isFinite(value) ? [value] : [];
          });
    const rates = rounds.map(drainRateOf).filter(Number.isFinite);
    const ratios = within(drainRateOf);
    const postgresRatios = within(postgresPerRow);
    return { configuration, rates, rate: median(rates), ratios, ratio: median(ratios), postgresRatios, postgresRatio: median(postgresRatios) };
  });
}

/** Prints the drain table, the ratios to the naive poller and the aim; returns what makes the run fail. */
export function reportDrain(outcomes: readonly DrainOutcome[], spread: { readonly entities: number; readonly tenants: number; readonly rounds: number }): string[] {
  const rows = outcomes[0]?.rows ?? 0;
  const naiveOf = (outcome: DrainOutcome) => outcomes.find((other) => other.configuration.kind === 'naive' && other.round === outcome.round);
  const failures: string[] = [];
  print();
  printTable({
    title:
      `drain of a backlog of ${rows.toLocaleString('en-US')} rows (one INSERT … SELECT generate_series), one configuration at a time on the same table, refilled for each; ` +
      `${spread.rounds} round${spread.rounds === 1 ? '' : 's'}, the order reversed every other round`,
    columns: [
      { header: 'round' },
      { header: 'poller', align: 'left' },
      { header: 'instances' },
      { header: 'drained in' },
      { header: 'rows/s' },
      { header: '÷ naive' },
      { header: 'poller CPU/row' },
      { header: 'Postgres CPU/row' },
      { header: 'exactly once, entity order', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const { configuration } = outcome;
      const label = `${configuration.name} (round ${outcome.round})`;
      const wrong = outcome.duplicates > 0 || outcome.outOfOrder > 0;
      const lost = outcome.distinct < outcome.rows || outcome.pending > 0;
      if (configuration.kind === 'partitioned') {
        if (wrong) failures.push(`${label}: ${outcome.duplicates} rows routed twice, ${outcome.outOfOrder} out of their entity's order`);
        if (outcome.failure !== undefined) failures.push(`${label}: ${outcome.failure}`);
      } else if (outcome.failure !== undefined) {
        failures.push(`${label}: ${outcome.failure}`);
      }
      const check = wrong
        ? `✗ ${outcome.duplicates} twice, ${outcome.outOfOrder} out of order`
        : lost
          ? `✗ ${(outcome.rows - outcome.distinct).toLocaleString('en-US')} not routed, ${outcome.pending.toLocaleString('en-US')} pending${outcome.drained ? '' : ' (not drained in time)'}`
          : '✓';
      const naive = naiveOf(outcome);
      return [
        String(outcome.round),
        configuration.name,
        String(configuration.pollers),
        outcome.drained ? formatMillis(outcome.elapsedMs) : `> ${formatMillis(outcome.elapsedMs)}`,
        formatRate(drainRateOf(outcome)),
        naive && configuration.kind !== 'naive' ? formatRatio(drainRateOf(outcome) / drainRateOf(naive)) : '—',
        formatMicros(outcome.pollerCpuMicros / outcome.routed),
        formatMicros(postgresPerRow(outcome)),
        outcome.failure !== undefined ? `✗ ${outcome.failure}` : check,
      ];
    }),
    notes: [
      `rows spread over ${spread.entities.toLocaleString('en-US')} entities and ${spread.tenants} tenants; the pollers run in the runner's process and route into a real EventRouter over the in-memory log and bus`,
      'naive poller: the seed\'s loop — one worker, SELECT … ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED, route each row, one UPDATE per row, COMMIT (peers/naive-outbox-poller.ts)',
      'createOutboxPoller: batches of 100 per entity partition (16) under an advisory lock, one routeMany and one UPDATE per batch; each instance its own pool (max 2), as a worker process',
      'drained in: pollers started → every row routed and its transaction committed; rows/s: rows routed ÷ that time; ÷ naive: to the naive poller of the same round',
      'poller CPU/row: the runner process (pollers, router, log) ÷ rows; Postgres CPU/row: the backends of the drain\'s database ÷ rows',
    ],
  });
  const summaries = summarizeDrainRounds(outcomes);
  const naive = summaries.find((summary) => summary.configuration.kind === 'naive');
  for (const summary of summaries) {
    if (!naive || summary === naive || summary.ratios.length === 0) continue;
    const each = (values: readonly number[]) => (values.length > 1 ? ` (rounds: ${values.map(formatRatio).join(', ')})` : '');
    print(
      `  ${summary.configuration.name}/${naive.configuration.name}  rows/s ${formatRatio(summary.ratio)}${each(summary.ratios)}  ` +
        `Postgres CPU/row ${formatRatio(summary.postgresRatio)}${each(summary.postgresRatios)}  (median of the ratios within each round)`,
    );
  }
  const four = summaries.find((summary) => summary.configuration.kind === 'partitioned' && summary.configuration.pollers === 4);
  if (four && four.rates.length > 0) {
    const each = four.rates.length > 1 ? ` (median of ${four.rates.map(formatRate).join(', ')})` : '';
    print(`  aim: ≥ ${formatRate(DRAIN_AIM_ROWS_PER_SECOND)} with 4 pollers: ${formatRate(four.rate)}${each} ${four.rate >= DRAIN_AIM_ROWS_PER_SECOND ? '✓' : '✗'}`);
  }
  return failures;
}
