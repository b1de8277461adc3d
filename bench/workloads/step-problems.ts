/**
 * What went wrong in a step, in words for the tables: why it did not keep up (`describeProblem`),
 * and why its figures cannot be compared with another peer's at the same offered rate
 * (`offeredLoadShortfall`): a peer whose publisher lagged behind the schedule, or that delivered
 * below the offered rate, was measured under another load than the one offered — its latency and
 * CPU per message describe that load, not the one in the table's title.
 */
import type { StepReport } from '../lib/fanout-protocol.ts';
import type { PublishReport } from '../lib/publisher.ts';

export interface StepFacts {
  readonly subscribers: number;
  readonly events: number;
  readonly ordered: boolean;
  /** Last receipt − when the last event was due, in ms. */
  readonly drainMs: number;
  readonly allowanceMs: number;
}

/** The first reason a step did not keep up, or undefined when it did. */
export function describeProblem(report: StepReport, publish: PublishReport, facts: StepFacts): string | undefined {
  const { subscribers, events } = facts;
  if (publish.failures > 0) return `${publish.failures} of ${events} publishes failed: ${publish.firstFailure ?? '?'}`;
  if (report.mismatched > 0) return `${report.mismatched.toLocaleString('en-US')} frames not as expected, the first: ${report.firstMismatch ?? '?'}`;
  if (report.open < subscribers) return `server closed ${subscribers - report.open} sockets (${formatCloses(report.closes)})`;
  if (report.operationEnds.length > 0) return `subscription ended: ${report.operationEnds[0]}`;
  if (report.misrouted > 0) return `${report.misrouted.toLocaleString('en-US')} messages reached a subscriber of another topic`;
  if (report.complete < subscribers) {
    const what = [
      report.missing > 0 && `${report.missing.toLocaleString('en-US')} messages missing${report.timedOut ? ' when the wait ended' : ''}`,
      report.duplicates > 0 && `${report.duplicates.toLocaleString('en-US')} twice${report.lateDuplicates > 0 ? ` (${report.lateDuplicates.toLocaleString('en-US')} of them earlier steps' events, again)` : ''}`,
    ].filter(Boolean);
    return `${(subscribers - report.complete).toLocaleString('en-US')} of ${subscribers.toLocaleString('en-US')} subscribers incomplete: ${what.join(', ')}`;
  }
  if (facts.ordered && report.outOfOrder > 0) return `${report.outOfOrder.toLocaleString('en-US')} messages out of publish order`;
  if (!facts.ordered && report.orders > 1) return `subscribers saw ${report.orders} different orders of the same events`;
  if (facts.drainMs > facts.allowanceMs) {
    // The publisher waits when all its requests are unanswered: then the backlog is in the HTTP path.
    const publisherLate = publish.lagMs > facts.allowanceMs ? `; publishing itself ended ${Math.round(publish.lagMs)} ms late` : '';
    return `backlog: last message ${Math.round(facts.drainMs)} ms after the last was due (allowed ${Math.round(facts.allowanceMs)} ms)${publisherLate}`;
  }
  return undefined;
}

export function formatCloses(closes: Readonly<Record<string, number>>): string {
  const entries = Object.entries(closes);
  return entries.length === 0 ? 'none' : entries.map(([reason, count]) => `${count}× ${reason}`).join(', ');
}

/** What `offeredLoadShortfall` reads of a step. */
export interface OfferedLoad {
  /** Events per second offered, and events the step was to send. */
  readonly rate: number;
  readonly events: number;
  readonly publish: Pick<PublishReport, 'sent' | 'startedAt' | 'lastSentAt' | 'lagMs'>;
  /** How late the last event may arrive after it was due, in ms (also how far behind the publisher may end). */
  readonly allowanceMs: number;
  /** Why the step did not keep up (a loss, a backlog…); undefined when it did. */
  readonly problem: string | undefined;
}

/** Events sent per second: below the offered rate when the sender fell behind its schedule. */
export function achievedRate(step: Pick<OfferedLoad, 'rate' | 'publish'>): number {
  const { sent, startedAt, lastSentAt } = step.publish;
  return sent / ((lastSentAt - startedAt) / 1000 + 1 / step.rate);
}

/** Sent below this share of the offered rate, a step was not run at that rate. */
const MIN_ACHIEVED_SHARE = 0.95;

/**
 * Why a step's figures are not those of the offered load — the publisher lagged (sent fewer events,
 * sent them slower than offered, or ended behind its schedule by more than the allowance), or the
 * peer delivered below the offered rate (lost messages, a backlog beyond the allowance, closed
 * sockets…) —, or undefined when they are. A ratio with such a step on either side is marked ✗.
 */
export function offeredLoadShortfall(step: OfferedLoad): string | undefined {
  const { publish, rate, events, allowanceMs } = step;
  if (publish.sent < events) return `publisher lagged: sent ${publish.sent} of ${events} events`;
  const achieved = achievedRate(step);
  if (achieved < MIN_ACHIEVED_SHARE * rate) return `publisher lagged: ${formatRate(achieved)} of ${formatRate(rate)} events/s offered`;
  if (publish.lagMs > allowanceMs) return `publisher lagged: ended ${Math.round(publish.lagMs)} ms behind schedule (allowed ${Math.round(allowanceMs)} ms)`;
  if (step.problem !== undefined) return `delivered below the offered rate: ${step.problem}`;
  return undefined;
}

function formatRate(rate: number): string {
  return rate >= 100 ? Math.round(rate).toLocaleString('en-US') : rate.toFixed(1);
}
