/**
 * The fan-out workload's measurements of one peer at a time: a step with every other peer's
 * server and load client paused (`measureAlone`), and the saturation search over the peers of a
 * section, alternating at each rate.
 */
import { messageOf } from '../lib/report.ts';
import { bestStep, firstFailedAbove, type FanoutSettings, type PeerOutcome } from './fanout-report.ts';
import { measureAlone, type FanoutSession, type StepResult } from './fanout-session.ts';

/** Events of a step at `rate` for `seconds`: at least 5. */
export function count(rate: number, seconds: number): number {
  return Math.max(5, Math.round(rate * seconds));
}

/**
 * Runs one measurement of `outcome`'s session with the other sessions of `group` paused. An
 * exception (crash, dead client) marks the peer failed instead of ending the run; so does a frame
 * that was not what it should be (`FanoutSession.wrongFrames`).
 */
export async function measure(
  group: readonly PeerOutcome[],
  outcome: PeerOutcome,
  settings: Pick<FanoutSettings, 'settleMs'>,
  work: (session: FanoutSession) => Promise<StepResult>,
): Promise<StepResult | undefined> {
  const session = outcome.session;
  if (!session || outcome.failure !== undefined) return undefined;
  try {
    const result = await measureAlone(
      group.map((member) => member.session),
      session,
      settings.settleMs,
      work,
    );
    if (session.wrongFrames !== undefined) outcome.failure = session.wrongFrames;
    return result;
  } catch (error) {
    outcome.failure = messageOf(error);
    return undefined;
  }
}

/**
 * Doubles the rate while a peer keeps up, every peer at the same rate before the next one
 * (ours, peer, …: drift on the machine lands on all alike); halves instead for a peer that
 * cannot keep up with the first rate; then bisects (geometric mean) between kept-up and not.
 * A rate not kept up with is tried `retries` more times before it counts. Every session of
 * `group` but the one measured is paused during a step.
 */
export async function searchSaturation(outcomes: readonly PeerOutcome[], settings: FanoutSettings, group: readonly PeerOutcome[] = outcomes): Promise<void> {
  const stepAt = async (outcome: PeerOutcome, rate: number): Promise<StepResult | undefined> => {
    const result = await measure(group, outcome, settings, (session) =>
      session.step({ rate, count: count(rate, settings.stepSeconds), ordered: false, tolerance: settings.tolerance }),
    );
    if (!result) return undefined;
    outcome.steps.push(result);
    // A server still working off a backlog would carry it into its next step.
    if (!result.keptUp) await outcome.session?.settle(settings.settleMs);
    return result;
  };
  const usable = (outcome: PeerOutcome) => outcome.failure === undefined && outcome.session?.broken === undefined;
  const tryRate = async (outcome: PeerOutcome, rate: number) => {
    let result = await stepAt(outcome, rate);
    for (let retry = 0; result?.keptUp === false && retry < settings.retries && usable(outcome); retry += 1) result = await stepAt(outcome, rate);
  };

  let climbing = outcomes.filter(usable);
  for (let rate = settings.startRate; climbing.length > 0 && rate <= settings.maxRate; rate *= 2) {
    for (const outcome of climbing) await tryRate(outcome, rate);
    climbing = climbing.filter((outcome) => usable(outcome) && outcome.steps.at(-1)?.keptUp === true);
  }
  for (const outcome of outcomes) {
    for (let rate = settings.startRate / 2; usable(outcome) && !bestStep(outcome) && rate >= settings.minRate; rate /= 2) await tryRate(outcome, rate);
  }
  for (let refinement = 0; refinement < settings.refinements; refinement += 1) {
    for (const outcome of outcomes) {
      const best = bestStep(outcome);
      const failed = firstFailedAbove(outcome, best?.rate ?? 0);
      if (!usable(outcome) || !best || !failed) continue;
      const rate = Math.round(Math.sqrt(best.rate * failed.rate));
      if (rate > best.rate && rate < failed.rate) await tryRate(outcome, rate);
    }
  }
}
