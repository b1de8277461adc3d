/**
 * The `reconnect` workload's tables: the server restart (per client library: time to resume,
 * arrival spread of the reconnections, events lost), the attempts-per-second histogram, the
 * in-band token refresh, and a one-line summary.
 */
import { createHistogram } from 'node:perf_hooks';
import type { CollectedReply } from '../lib/reconnect-client-process.ts';
import type { ClientKind, DeliveryReport, RefreshReport } from '../lib/reconnect-protocol.ts';
import { print, printTable } from '../lib/report.ts';
import { formatMicros, formatMillis, formatRate, recordMillis, summarize } from '../lib/stats.ts';

export interface RestartResult {
  readonly kind: ClientKind;
  readonly clients: number;
  /** `clockMillis()` of the SIGKILL, and of the restarted server's ready line. */
  readonly killedAt: number;
  readonly restartedAt: number;
  /** Clients without an event since the kill when the wait ended. */
  readonly notResumed: number;
  readonly events: number;
  readonly publishFailures: number;
  readonly collected: CollectedReply;
}

export interface RefreshResult {
  readonly clients: number;
  readonly report: RefreshReport;
  /** Server CPU over the refreshes, in µs, and what the event flow alone costs per second (µs/s). */
  readonly serverCpuMicros: number;
  readonly baselineCpuPerSecond: number;
  readonly events: number;
  readonly collected: CollectedReply;
}

/** Per second since the restart: connection attempts (index 0 = the first second). */
export function attemptsPerSecond(result: RestartResult): number[] {
  const buckets: number[] = [];
  for (const at of result.collected.outage.attempts) {
    if (at < result.restartedAt) continue;
    const second = Math.floor((at - result.restartedAt) / 1000);
    if (second > 600) continue;
    while (buckets.length <= second) buckets.push(0);
    buckets[second] = (buckets[second] ?? 0) + 1;
  }
  return buckets;
}

/** Times since the restart (ms; a client faster than the ready line counts 0), with the clients that have none. */
function sinceRestart(times: readonly number[], restartedAt: number) {
  const histogram = createHistogram();
  let missing = 0;
  let last = 0;
  for (const at of times) {
    if (Number.isNaN(at)) {
      missing += 1;
      continue;
    }
    const millis = Math.max(0, at - restartedAt);
    last = Math.max(last, millis);
    recordMillis(histogram, Math.max(millis, 0.001));
  }
  return { summary: summarize(histogram), missing, last };
}

function lossCells(delivery: DeliveryReport): string[] {
  return [
    `${delivery.received.toLocaleString('en-US')}/${delivery.expected.toLocaleString('en-US')}`,
    delivery.lost.toLocaleString('en-US'),
    delivery.duplicates.toLocaleString('en-US'),
    delivery.outOfOrder.toLocaleString('en-US'),
  ];
}

const LABEL: Record<ClientKind, string> = { sdk: '@tributary/client', 'graphql-ws': 'graphql-ws (default backoff)' };

export function printRestart(results: readonly RestartResult[]): void {
  const rows = results.map((result) => {
    const connected = sinceRestart(result.collected.outage.connectedAt, result.restartedAt);
    const resumed = sinceRestart(result.collected.outage.resumedAt, result.restartedAt);
    const perSecond = attemptsPerSecond(result);
    const before = result.collected.outage.attempts.filter((at) => at < result.restartedAt).length;
    return [
      LABEL[result.kind],
      result.clients.toLocaleString('en-US'),
      formatMillis(result.restartedAt - result.killedAt),
      result.notResumed === 0 ? formatMillis(resumed.last) : `${result.notResumed} never${result.collected.outage.gaveUp > 0 ? ` (${result.collected.outage.gaveUp} gave up)` : ''}`,
      formatMicros(connected.summary?.p50 ?? Number.NaN),
      formatMicros(connected.summary?.p99 ?? Number.NaN),
      formatMicros(resumed.summary?.p50 ?? Number.NaN),
      formatMicros(resumed.summary?.p99 ?? Number.NaN),
      Math.max(0, ...perSecond).toLocaleString('en-US'),
      before.toLocaleString('en-US'),
      ...lossCells(result.collected.delivery),
    ];
  });
  printTable({
    title: 'server restart (SIGKILL, restarted on the same port; events published meanwhile through a second instance)',
    columns: [
      { header: 'client', align: 'left' },
      { header: 'clients' },
      { header: 'down' },
      { header: 'all resumed' },
      { header: 'reconn p50' },
      { header: 'reconn p99' },
      { header: 'resume p50' },
      { header: 'resume p99' },
      { header: 'max att/s' },
      { header: 'att. down' },
      { header: 'delivered' },
      { header: 'lost' },
      { header: 'dup' },
      { header: 'reordered' },
    ],
    rows,
    notes: [
      'down: SIGKILL → restarted server ready; all resumed / resume: restart → a client\'s first event after the kill (p50/p99 over clients);',
      'reconn: restart → its socket acknowledged; max att/s: most connection attempts in one second after the restart; att. down: attempts refused while down',
      'delivered/lost/dup/reordered: events of the client\'s topic from the first timed one to the last published, once each, in order (checked per client)',
    ],
  });
  for (const result of results) {
    const buckets = attemptsPerSecond(result);
    print(`  ${LABEL[result.kind]} attempts per second after the restart: ${buckets.map((count, second) => `${second}s:${count}`).join(' ') || 'none'}`);
    const outcomes = Object.entries(result.collected.outage.outcomes).sort((a, b) => b[1] - a[1]);
    print(`  ${LABEL[result.kind]} attempts that ended: ${outcomes.map(([outcome, count]) => `${outcome} ×${count}`).join(', ') || 'none'}`);
    if (result.collected.clientErrors > 0) print(`  ${LABEL[result.kind]}: ${result.collected.clientErrors} client errors, first: ${result.collected.firstClientError ?? ''}`);
    if (result.publishFailures > 0) print(`  ${LABEL[result.kind]}: ${result.publishFailures} of ${result.events} publishes failed`);
  }
}

/** Server CPU per refresh, net of what the event flow costs over the same time (µs). */
export function cpuPerRefresh(result: RefreshResult): number {
  const seconds = (result.report.finishedAt - result.report.startedAt) / 1000;
  return (result.serverCpuMicros - result.baselineCpuPerSecond * seconds) / Math.max(1, result.report.refreshed);
}

export function refreshRate(result: RefreshResult): number {
  return result.report.refreshed / ((result.report.finishedAt - result.report.startedAt) / 1000);
}

export function printRefresh(result: RefreshResult, parallel: number): void {
  const seconds = (result.report.finishedAt - result.report.startedAt) / 1000;
  printTable({
    title: `token refresh in-band (refreshToken(): refreshAuth on the live socket, ${parallel} in flight) while events flow`,
    columns: [
      { header: 'sockets' },
      { header: 'refreshed' },
      { header: 'failed' },
      { header: 'took' },
      { header: 'refreshes/s' },
      { header: 'server CPU/refresh' },
      { header: 'server CPU (raw)' },
      { header: 'client CPU/refresh' },
      { header: 'delivered' },
      { header: 'lost' },
      { header: 'dup' },
      { header: 'reordered' },
    ],
    rows: [
      [
        result.clients.toLocaleString('en-US'),
        result.report.refreshed.toLocaleString('en-US'),
        result.report.failed.toLocaleString('en-US'),
        formatMillis(seconds * 1000),
        formatRate(refreshRate(result)),
        formatMicros(cpuPerRefresh(result)),
        formatMicros(result.serverCpuMicros / Math.max(1, result.report.refreshed)),
        formatMicros(result.report.clientCpuMicros / Math.max(1, result.report.refreshed)),
        ...lossCells(result.collected.delivery),
      ],
    ],
    notes: [
      `server CPU/refresh: the server's CPU over the refreshes minus what the event flow alone used over as long (${formatMicros(result.baselineCpuPerSecond)} per s, measured just before), ÷ refreshes; raw: without that subtraction`,
      'client CPU/refresh: the load client, HS256 signing of the new token included',
      ...(result.report.firstFailure !== undefined ? [`first failure: ${result.report.firstFailure}`] : []),
    ],
  });
}

/** One line for the top of a summary. */
export function summaryLine(restarts: readonly RestartResult[], refresh: RefreshResult | undefined): string {
  const parts = restarts.map((result) => {
    const resumed = sinceRestart(result.collected.outage.resumedAt, result.restartedAt);
    const spread = Math.max(0, ...attemptsPerSecond(result));
    return (
      `${LABEL[result.kind]}: ${result.clients.toLocaleString('en-US')} clients all resumed ${result.notResumed === 0 ? formatMillis(resumed.last) : 'NEVER'} after the restart ` +
      `(p50 ${formatMicros(resumed.summary?.p50 ?? Number.NaN)}), max ${spread} attempts/s, ${result.collected.delivery.lost} events lost, ${result.collected.delivery.duplicates} duplicates`
    );
  });
  if (refresh) {
    parts.push(
      `refresh: ${refresh.report.refreshed.toLocaleString('en-US')} sockets at ${formatRate(refreshRate(refresh))}, ${formatMicros(cpuPerRefresh(refresh))} server CPU each, ` +
        `${refresh.collected.delivery.lost} events lost, ${refresh.collected.delivery.duplicates} duplicates`,
    );
  }
  return `summary — ${parts.join('; ')}`;
}
