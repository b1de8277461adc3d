/**
 * The `webhooks` workload's tables, ratio lines and aims, and what makes the run fail: a Tributary
 * mode that could not be measured (crash, error, warm-up not delivered), that delivered an event
 * twice to one receiver in a healthy run — within its step or after it (`reportLateCopies`) — or,
 * spread, to an endpoint that does not select its topic. A mode that cannot keep up, or a latency
 * or drain outside its aim, is a result.
 */
import { print, printRatioLine, printTable } from '../lib/report.ts';
import { formatMicros, formatMillis, formatRate, formatRatio, median } from '../lib/stats.ts';
import { WEBHOOK_TOPIC } from '../lib/webhook-payload.ts';
import type { LateReport } from '../lib/webhook-receiver-protocol.ts';
import { measuredDeliveries, measuredRate, type DrainOutcome, type DrainSettings } from './webhooks-drain.ts';
import { LATE_COPY_GRACE_MS, MODES } from './webhooks-setup.ts';
import type { LatencyOutcome, LatencyStep } from './webhooks-latency.ts';

/** At this rate (events/s), p99 event → receiver should be at most `LATENCY_AIM_P99_MS`; in both fan-outs. */
export const LATENCY_AIM_RATE = 1000;
export const LATENCY_AIM_P99_MS = 50;
/** A drain should reach at least this fraction of the plain POST loop's rate. */
export const DRAIN_AIM_RATIO = 0.5;

export interface LatencyTable {
  readonly endpoints: number;
  readonly rate: number;
  readonly seconds: number;
  readonly rounds: number;
  /** WEBHOOK_CONCURRENCY and the endpoints' maxConcurrency, as the servers ran. */
  readonly concurrency: string;
  /** The publisher's requests in flight at most. */
  readonly publishesInFlight: number;
  /** The steps of the spread fan-out: each event to one endpoint (topic per endpoint). @default false */
  readonly spread?: boolean;
}

interface LatencySummary {
  readonly achieved: number;
  readonly deliveredPerSecond: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly publishP50: number;
  readonly delivered: number;
  readonly expected: number;
  readonly duplicates: number;
  readonly misrouted: number;
  readonly complete: boolean;
  readonly serverCpuPerDelivery: number;
  readonly postgresCpuPerDelivery: number;
  readonly redisCpuPerDelivery: number;
  readonly machineBusy: number;
}

function summarizeSteps(steps: readonly LatencyStep[]): LatencySummary | undefined {
  if (steps.length === 0) return undefined;
  const of = (pick: (step: LatencyStep) => number | undefined) => median(steps.map((step) => pick(step) ?? Number.NaN));
  let delivered = 0;
  let expected = 0;
  let duplicates = 0;
  let misrouted = 0;
  for (const step of steps) {
    delivered += step.receivers.received;
    expected += step.receivers.received + step.receivers.missing;
    duplicates += step.receivers.duplicates;
    misrouted += step.receivers.misrouted;
  }
  return {
    achieved: of((s) => s.events / ((s.publish.lastSentAt - s.publish.startedAt) / 1000 + 1 / s.rate)),
    deliveredPerSecond: of((s) => s.receivers.received / (s.wallMs / 1000)),
    p50: of((s) => s.receivers.latency?.p50),
    p90: of((s) => s.receivers.latency?.p90),
    p99: of((s) => s.receivers.latency?.p99),
    max: of((s) => s.receivers.latency?.max),
    publishP50: of((s) => s.publish.answered?.p50),
    delivered,
    expected,
    duplicates,
    misrouted,
    complete: steps.every((step) => step.receivers.complete),
    serverCpuPerDelivery: of((s) => s.serverCpuMicros / s.receivers.received),
    postgresCpuPerDelivery: of((s) => s.postgresCpuMicros / s.receivers.received),
    redisCpuPerDelivery: of((s) => s.redisCpuMicros / s.receivers.received),
    machineBusy: of((s) => s.machineBusy),
  };
}

/** Prints one rate's table, the aim and the ratio line between the modes; returns what makes the run fail. */
export function reportLatency(outcomes: readonly LatencyOutcome[], table: LatencyTable): string[] {
  const { rate, endpoints } = table;
  const spread = table.spread === true;
  const rateText = rate.toLocaleString('en-US');
  const summaries = new Map(outcomes.map((outcome) => [outcome.mode, summarizeSteps(outcome.steps.get(rate) ?? [])]));
  const aimOf = (m: LatencySummary): string => {
    if (rate !== LATENCY_AIM_RATE) return '—';
    const met = m.complete && m.p99 <= LATENCY_AIM_P99_MS * 1000;
    return `p99 ≤ ${LATENCY_AIM_P99_MS} ms ${met ? '✓' : '✗'}`;
  };
  print();
  printTable({
    title: spread
      ? `each event to one of the ${endpoints} endpoints (topic per endpoint): ${rateText} events/s = ${rateText} deliveries/s, publish over HTTP for ${table.seconds} s, ` +
        `a receiver per endpoint; median of the rounds measured (of ${table.rounds})`
      : `${endpoints} endpoints (a receiver each), each event delivered to all: publish over HTTP at ${rateText} events/s ` +
        `(${(rate * endpoints).toLocaleString('en-US')} deliveries/s) for ${table.seconds} s; median of the rounds measured (of ${table.rounds})`,
    columns: [
      { header: 'mode', align: 'left' },
      { header: 'events/s' },
      { header: 'deliveries/s' },
      { header: 'event→receiver p50' },
      { header: 'p90' },
      { header: 'p99' },
      { header: 'max' },
      { header: 'publish p50' },
      { header: 'delivered/expected' },
      { header: 'twice' },
      { header: 'server CPU/delivery' },
      { header: 'Postgres' },
      { header: 'Redis' },
      { header: 'machine' },
      { header: 'aim', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const m = summaries.get(outcome.mode);
      if (!m) return [outcome.mode, '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', `✗ not measured: ${outcome.failure ?? '?'}`];
      // An incomplete step's percentiles are of what arrived: the missing deliveries are the slowest.
      const bound = m.complete ? '' : '≥ ';
      return [
        outcome.mode,
        m.achieved.toFixed(1),
        formatRate(m.deliveredPerSecond),
        `${bound}${formatMicros(m.p50)}`,
        `${bound}${formatMicros(m.p90)}`,
        `${bound}${formatMicros(m.p99)}`,
        `${bound}${formatMicros(m.max)}`,
        formatMicros(m.publishP50),
        `${m.delivered.toLocaleString('en-US')}/${m.expected.toLocaleString('en-US')}`,
        String(m.duplicates),
        formatMicros(m.serverCpuPerDelivery),
        formatMicros(m.postgresCpuPerDelivery),
        formatMicros(m.redisCpuPerDelivery),
        Number.isFinite(m.machineBusy) ? m.machineBusy.toFixed(2) : '—',
        aimOf(m),
      ];
    }),
    notes: [
      `tributary-bullmq: Redis, BullMQ queue and Redis Streams log; tributary-embedded: no Redis, the in-process delivery loop; both role all (one process publishes and delivers), platform database on the private Postgres, ${table.concurrency}`,
      "event→receiver: publish due (the payload's sentAt: its place in the schedule, however late the publisher got to send it) → the receiver has read the request body (clocks of two processes on one machine); publish: sent → answered (the deliveries are stored by then)",
      `events/s: published, ${table.publishesInFlight} publishes in flight at most; the publisher stops at the end of the step, so it is below the rate when the server answers more slowly`,
      ...(spread
        ? [
            `spread: endpoint i selects only the topic ${WEBHOOK_TOPIC}.i (i = 0…${endpoints - 1}), event seq is published on ${WEBHOOK_TOPIC}.(seq mod ${endpoints}); ` +
              "servers, databases and endpoints of their own, apart from the all-endpoints steps'",
            'deliveries/s: delivered ÷ (first publish → last delivery); delivered/expected: over all rounds, each event once, at the receiver of its topic, of the events published; twice: an event its receiver got again',
          ]
        : ['deliveries/s: delivered ÷ (first publish → last delivery); delivered/expected: over all rounds, once per receiver, of the events published; twice: an event a receiver got again']),
      'server CPU/delivery: the Tributary process over the step ÷ deliveries (publish, routing, storing, delivering); Postgres: the backends of its database; Redis: redis-server; machine: cores busy over the step',
      `the other mode's server is left running during a step (a paused BullMQ worker would lose its job locks): it used ${Math.max(0, ...outcomes.flatMap((outcome) => (outcome.steps.get(rate) ?? []).map((step) => step.bystandersBusy)).filter(Number.isFinite)).toFixed(2)} cores at most (in no column but machine)`,
      ...(outcomes.some((outcome) => !(summaries.get(outcome.mode)?.complete ?? true))
        ? [
            '≥: not every delivery arrived within the collect timeout after the last publish; the percentiles are of those that did (the missing ones would be the slowest); ' +
              'the mode\'s server was stopped there (further rounds at this rate skipped) and the next rate started on a fresh one',
          ]
        : []),
      ...outcomes.flatMap((outcome) => {
        const misrouted = summaries.get(outcome.mode)?.misrouted ?? 0;
        return misrouted > 0 ? [`✗ ${outcome.mode}: ${misrouted.toLocaleString('en-US')} deliveries reached an endpoint that does not select their topic (not counted as delivered)`] : [];
      }),
    ],
  });
  const failures: string[] = [];
  for (const outcome of outcomes) {
    const label = `${outcome.mode} (${rate}/s${spread ? ', spread' : ''})`;
    if (outcome.failure !== undefined) failures.push(`${label}: ${outcome.failure}`);
    const m = summaries.get(outcome.mode);
    if (m && m.duplicates > 0 && m.complete) failures.push(`${label}: ${m.duplicates} deliveries arrived twice`);
    // Not a matter of load: an endpoint got an event its selection excludes.
    if (m && m.misrouted > 0) failures.push(`${label}: ${m.misrouted} deliveries reached an endpoint that does not select their topic`);
  }
  const [bullmq, embedded] = outcomes.map((outcome) => summaries.get(outcome.mode));
  if (bullmq && embedded) {
    printRatioLine('tributary-embedded', 'tributary-bullmq', [
      { metric: 'p50', value: embedded.p50 / bullmq.p50 },
      { metric: 'p99', value: embedded.p99 / bullmq.p99 },
      { metric: 'server CPU/delivery', value: embedded.serverCpuPerDelivery / bullmq.serverCpuPerDelivery },
    ]);
  }
  if (rate === LATENCY_AIM_RATE) {
    // The all-endpoints line as it always read; the spread line says which reading of the aim it is.
    const reading = spread ? `, each event to one of the ${endpoints} endpoints (${rateText} deliveries/s)` : '';
    for (const outcome of outcomes) {
      const m = summaries.get(outcome.mode);
      if (!m) continue;
      const met = m.complete && m.p99 <= LATENCY_AIM_P99_MS * 1000;
      print(`  aim ${outcome.mode}: p99 ≤ ${LATENCY_AIM_P99_MS} ms at ${LATENCY_AIM_RATE.toLocaleString('en-US')} events/s${reading}: ${m.complete ? '' : '≥ '}${formatMicros(m.p99)} ${met ? '✓' : '✗'}`);
    }
  }
  return failures;
}

const rateOf = measuredRate;
/** The rate from the first delivery, warm-up included: a cold start's. */
const wholeRateOf = (outcome: DrainOutcome) => (outcome.receiver ? outcome.receiver.received / (outcome.wholeElapsedMs / 1000) : Number.NaN);

/** Prints the drain table, the ratios to the plain loop and the naive worker, and the aim; returns what makes the run fail. */
export function reportDrain(outcomes: readonly DrainOutcome[], drain: DrainSettings): string[] {
  // Compared within a round: senders seconds apart, on a machine whose speed drifts.
  const limitOf = (outcome: DrainOutcome) => outcomes.find((other) => other.kind === 'limit' && other.round === outcome.round);
  const naiveOf = (outcome: DrainOutcome) => outcomes.find((other) => other.kind === 'naive' && other.round === outcome.round);
  const failures: string[] = [];
  print();
  printTable({
    title:
      `drain of a backlog of ${(drain.warmup + drain.deliveries).toLocaleString('en-US')} deliveries to one receiver, the last ${drain.deliveries.toLocaleString('en-US')} measured ` +
      `(the first ${drain.warmup.toLocaleString('en-US')} warm the sender up), ${drain.concurrency} in flight for every sender, one after another, ${drain.rounds} round${drain.rounds === 1 ? '' : 's'}`,
    columns: [
      { header: 'round' },
      { header: 'sender', align: 'left' },
      { header: 'deliveries/s' },
      { header: 'measured in' },
      { header: 'from cold' },
      { header: '÷ plain loop' },
      { header: '÷ naive' },
      { header: 'sender CPU/delivery' },
      { header: 'Postgres' },
      { header: 'Redis' },
      { header: 'Redis cmds/delivery' },
      { header: 'receiver busy' },
      { header: 'exactly once', align: 'left' },
    ],
    rows: outcomes.map((outcome) => {
      const { receiver } = outcome;
      if (outcome.kind === 'tributary') {
        if (outcome.failure !== undefined) failures.push(`${outcome.name} (drain): ${outcome.failure}`);
        if (receiver && receiver.duplicates > 0) failures.push(`${outcome.name} (drain): ${receiver.duplicates} deliveries arrived twice`);
      } else if (outcome.failure !== undefined && !receiver) {
        failures.push(`${outcome.name} (drain): ${outcome.failure}`);
      }
      if (!receiver) return [String(outcome.round), outcome.name, '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', `✗ ${outcome.failure ?? '?'}`];
      const twice = receiver.duplicates + outcome.lateDuplicates;
      const check =
        twice > 0
          ? `✗ ${twice} twice${outcome.lateDuplicates > 0 ? ` (${outcome.lateDuplicates} after the drain)` : ''}`
          : !receiver.complete
            ? `✗ ${receiver.missing.toLocaleString('en-US')} not delivered within ${formatMillis(drain.timeoutMs)}`
            : outcome.failure !== undefined
              ? `✗ ${outcome.failure}`
              : '✓';
      const rate = rateOf(outcome);
      const measured = measuredDeliveries(outcome);
      const limit = limitOf(outcome);
      const naive = naiveOf(outcome);
      return [
        String(outcome.round),
        outcome.name,
        formatRate(rate),
        `${receiver.complete ? '' : '> '}${formatMillis(outcome.elapsedMs)}`,
        formatRate(wholeRateOf(outcome)),
        limit && outcome !== limit ? formatRatio(rate / rateOf(limit)) : '—',
        naive && outcome.kind === 'tributary' ? formatRatio(rate / rateOf(naive)) : '—',
        formatMicros(outcome.senderCpuMicros / measured),
        formatMicros(outcome.postgresCpuMicros / measured),
        formatMicros(outcome.redisCpuMicros / measured),
        Number.isFinite(outcome.redisCommands) ? (outcome.redisCommands / measured).toFixed(1) : '—',
        `${(outcome.receiverCpuMicros / 1000 / outcome.elapsedMs).toFixed(2)} cores`,
        check,
      ];
    }),
    notes: [
      'tributary-*: the endpoint and the backlog written with the engine\'s functions as a server and its routing tap write them — storeDeliveries, with BullMQ a job per lane head — (' +
        outcomes
          .filter((o) => o.kind === 'tributary')
          .map((o) => `${o.name}: ${o.seeded ?? '—'}`)
          .join('; ') +
        '), then drained by a server of the mode (role all, WEBHOOK_CONCURRENCY and maxConcurrency = the concurrency) started on that database and queue',
      `naive-bullmq: one BullMQ job per delivery (addBulk), a Worker of concurrency ${drain.concurrency} doing await request(url, { method: 'POST', body }) with undici, as the loop (peers/naive-bullmq-webhooks.ts; ${outcomes.find((o) => o.kind === 'naive')?.seeded ?? '—'})`,
      `plain-post-loop: ${drain.concurrency} keep-alive undici connections POSTing the same body back to back — the physical limit (peers/plain-post-loop.ts)`,
      'measured in: the last warm-up delivery → the last delivery at the receiver; deliveries/s: the measured deliveries ÷ that; from cold: every delivery ÷ first → last (a sender started cold: JIT, connections). Every sender posts a body of the same shape and size (~' +
        `${Math.round(outcomes.find((o) => o.receiver)?.receiver?.meanBodyBytes ?? Number.NaN)} bytes); Tributary adds its signature headers`,
      'exactly once: every delivery of the backlog arrived, none twice — also after the drain: Tributary\'s server runs ' +
        `${formatMillis(LATE_COPY_GRACE_MS)} more (a first retry's backoff and a look at due deliveries), unmeasured, before it is stopped`,
      "CPU over the measured part ÷ its deliveries — sender: the sending process (Tributary's drain process; the runner for the naive worker and the loop); Postgres: its database's backends; Redis: redis-server, and the commands it ran (those inside Lua scripts included); receiver busy: the receivers' process ÷ the measured time",
    ],
  });
  for (const outcome of outcomes) {
    const limit = limitOf(outcome);
    if (!limit || outcome === limit || !outcome.receiver) continue;
    printRatioLine(`round ${outcome.round}: ${outcome.name}`, limit.name, [{ metric: 'deliveries/s', value: rateOf(outcome) / rateOf(limit) }]);
  }
  for (const outcome of outcomes) {
    const naive = naiveOf(outcome);
    if (outcome.kind !== 'tributary' || !outcome.receiver || !naive?.receiver) continue;
    printRatioLine(`round ${outcome.round}: ${outcome.name}`, naive.name, [
      { metric: 'deliveries/s', value: rateOf(outcome) / rateOf(naive) },
      { metric: 'sender CPU/delivery', value: outcome.senderCpuMicros / measuredDeliveries(outcome) / (naive.senderCpuMicros / measuredDeliveries(naive)) },
    ]);
  }
  // The aim, on the median of the rounds' ratios; met only when every round of the mode drained completely.
  for (const name of new Set(outcomes.filter((outcome) => outcome.kind === 'tributary').map((outcome) => outcome.name))) {
    const rounds = outcomes.filter((outcome) => outcome.name === name);
    const ratios = rounds.flatMap((outcome) => {
      const limit = limitOf(outcome);
      return outcome.receiver && limit?.receiver ? [rateOf(outcome) / rateOf(limit)] : [];
    });
    if (ratios.length === 0) continue;
    const ratio = median(ratios);
    const incomplete = rounds.filter((outcome) => !outcome.receiver?.complete).length;
    const each = ratios.length > 1 ? ` (rounds: ${ratios.map(formatRatio).join(', ')})` : '';
    const shortfall = incomplete > 0 ? `, ${incomplete} of ${rounds.length} rounds not drained completely` : '';
    print(`  aim ${name}: ≥ ${formatRatio(DRAIN_AIM_RATIO)} the plain POST loop: ${formatRatio(ratio)}${each}${shortfall} ${ratio >= DRAIN_AIM_RATIO && incomplete === 0 ? '✓' : '✗'}`);
  }
  return failures;
}

/** Statements shown per mode: the most frequent, which are what a delivery costs. */
const TOP_STATEMENTS = 10;
const STATEMENT_TEXT = 110;

/** Prints what each Tributary mode asked of Postgres per delivery during its drain. */
export function reportStatements(outcomes: readonly DrainOutcome[]): void {
  const lastRound = Math.max(...outcomes.map((outcome) => outcome.round));
  const measured = outcomes.filter((outcome) => outcome.kind === 'tributary' && outcome.round === lastRound && outcome.receiver && outcome.statements.length > 0);
  if (measured.length === 0) return;
  const rows: string[][] = [];
  for (const outcome of measured) {
    const delivered = measuredDeliveries(outcome);
    const total = outcome.statements.reduce((sum, statement) => sum + statement.calls, 0);
    rows.push([outcome.name, 'every statement', (total / delivered).toFixed(2), '—']);
    for (const statement of outcome.statements.slice(0, TOP_STATEMENTS)) {
      const text = statement.query.length > STATEMENT_TEXT ? `${statement.query.slice(0, STATEMENT_TEXT - 1)}…` : statement.query;
      rows.push(['', text, (statement.calls / delivered).toFixed(2), formatMicros(statement.meanMs * 1000)]);
    }
  }
  print();
  printTable({
    title: 'what a delivery asks of Postgres during the measured drain of the last round (pg_stat_statements of the mode\'s database; each statement is a round trip from the server)',
    columns: [{ header: 'mode', align: 'left' }, { header: 'statement', align: 'left' }, { header: 'per delivery' }, { header: 'mean in Postgres' }],
    rows,
    notes: ['counted over the measured part of the drain (after the warm-up); BEGIN and COMMIT are statements too'],
  });
}

/**
 * Prints the copies the receivers got after their step was collected — a retry after its backoff,
 * often during another sender's step — per sender; returns what makes the run fail: such a second
 * copy or misrouted delivery from a Tributary mode (of a step it completed: one cut short had its
 * server stopped with a backlog).
 */
export function reportLateCopies(late: LateReport, senders: readonly string[]): string[] {
  const bySender = new Map(senders.map((sender) => [sender, { duplicates: 0, misrouted: 0, ofIncomplete: 0 }]));
  for (const step of late.steps) {
    const tally = bySender.get(step.sender) ?? { duplicates: 0, misrouted: 0, ofIncomplete: 0 };
    bySender.set(step.sender, tally);
    tally.misrouted += step.misrouted;
    if (step.complete) tally.duplicates += step.duplicates;
    else tally.ofIncomplete += step.duplicates;
  }
  const describe = (tally: { duplicates: number; misrouted: number; ofIncomplete: number }) =>
    [
      `${tally.duplicates} twice`,
      ...(tally.misrouted > 0 ? [`${tally.misrouted} at an endpoint not selecting their topic`] : []),
      ...(tally.ofIncomplete > 0 ? [`${tally.ofIncomplete} twice of a step cut short`] : []),
    ].join(', ');
  print();
  print(
    `deliveries that arrived after their step was collected (each step's events are its own, so a late copy is counted against its step, whichever step was under way): ` +
      `${[...bySender].map(([sender, tally]) => `${sender} ${describe(tally)}`).join('; ')}; requests of no step ${late.stray}`,
  );
  const tributary = new Set<string>(MODES.map((mode) => mode.name));
  const failures: string[] = [];
  for (const [sender, tally] of bySender) {
    if (!tributary.has(sender) || tally.duplicates + tally.misrouted === 0) continue;
    failures.push(`${sender}: ${describe(tally)} after their step was collected`);
  }
  return failures;
}
