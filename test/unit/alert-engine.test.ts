import { describe, expect, it } from 'vitest';
import { expire, NO_STREAKS, step, worthKeeping, type OpenAlert, type Streaks, type Transition } from '../../src/pipeline/alerts/alert-engine.ts';
import type { Verdict } from '../../src/pipeline/alerts/alert-rule.ts';
import { judgeCount } from '../../src/pipeline/alerts/rules/cluster-rules.ts';
import { judgeBytes } from '../../src/pipeline/alerts/rules/cdc-rules.ts';
import { judgeBacklogAge } from '../../src/pipeline/alerts/rules/outbox-rules.ts';
import { judgeDeadLetters, judgeFailureRate } from '../../src/pipeline/alerts/rules/webhook-rules.ts';

const POLICY = { fireAfter: 2, resolveAfter: 3 };
const warning: Verdict = { kind: 'bad', severity: 'warning', value: 0.3, message: 'warning' };
const critical: Verdict = { kind: 'bad', severity: 'critical', value: 0.9, message: 'critical' };
const good: Verdict = { kind: 'good', value: 0 };
const unknown: Verdict = { kind: 'unknown', reason: 'too few samples' };
const between: Verdict = { kind: 'between', value: 0.19 };

/** Runs verdicts through the engine like the evaluator does, keeping the open alert; returns the transitions. */
function run(verdicts: readonly Verdict[], start: { streaks?: Streaks; open?: OpenAlert } = {}): { transitions: (Transition | undefined)[]; open: OpenAlert | undefined; streaks: Streaks } {
  let streaks = start.streaks ?? NO_STREAKS;
  let open = start.open;
  const transitions: (Transition | undefined)[] = [];
  for (const verdict of verdicts) {
    const next = step(streaks, open, verdict, POLICY);
    streaks = next.streaks;
    transitions.push(next.transition);
    if (next.transition?.kind === 'fired') open = { state: 'firing', severity: next.transition.severity };
    if (next.transition?.kind === 'escalated') open = { state: open!.state, severity: 'critical' };
    if (next.transition?.kind === 'resolved') open = undefined;
  }
  return { transitions, open, streaks };
}

const kinds = (transitions: readonly (Transition | undefined)[]) => transitions.map((t) => t?.kind ?? '-');

describe('alert engine (hysteresis)', () => {
  it('fires only after fireAfter bad evaluations in a row', () => {
    expect(kinds(run([warning]).transitions)).toEqual(['-']);
    expect(kinds(run([warning, good, warning]).transitions)).toEqual(['-', '-', '-']);
    const fired = run([warning, warning]);
    expect(kinds(fired.transitions)).toEqual(['-', 'fired']);
    expect(fired.transitions[1]).toMatchObject({ severity: 'warning', value: 0.3, message: 'warning' });
  });

  it('fires critical when the whole bad streak was critical, warning when it was mixed', () => {
    expect(run([critical, critical]).transitions[1]).toMatchObject({ kind: 'fired', severity: 'critical' });
    expect(run([warning, critical]).transitions[1]).toMatchObject({ kind: 'fired', severity: 'warning' });
  });

  it('escalates an open warning after fireAfter critical evaluations, and never lowers it while open', () => {
    const escalated = run([warning, warning, critical, critical, warning, warning]);
    expect(kinds(escalated.transitions)).toEqual(['-', 'fired', '-', 'escalated', '-', '-']);
    expect(escalated.open).toEqual({ state: 'firing', severity: 'critical' });
  });

  it('resolves after resolveAfter good evaluations in a row, acknowledged or not', () => {
    expect(kinds(run([good, good, good], { open: { state: 'firing', severity: 'warning' } }).transitions)).toEqual(['-', '-', 'resolved']);
    expect(kinds(run([good, good, warning, good, good, good], { open: { state: 'acknowledged', severity: 'critical' } }).transitions)).toEqual([
      '-',
      '-',
      '-',
      '-',
      '-',
      'resolved',
    ]);
  });

  it('resolves with the message of the good figure it resolves on, never keeping the firing one', () => {
    const open = { state: 'firing', severity: 'warning' } as const;
    const backWithin: Verdict = { kind: 'good', value: 0, message: 'back within limit: 0 open connections (limit 3)' };
    expect(step({ bad: 0, critical: 0, good: 2 }, open, backWithin, POLICY).transition).toEqual({
      kind: 'resolved',
      value: 0,
      message: 'back within limit: 0 open connections (limit 3)',
    });
    // A rule that judges good with no figure to tell (a reader streaming again) still says it resolved.
    expect(step({ bad: 0, critical: 0, good: 2 }, open, good, POLICY).transition).toEqual({ kind: 'resolved', value: 0, message: 'back to normal' });
  });

  it('treats unknown as no information: it neither fires, resolves nor breaks a streak', () => {
    expect(kinds(run([unknown, unknown, unknown]).transitions)).toEqual(['-', '-', '-']);
    expect(kinds(run([warning, unknown, warning]).transitions)).toEqual(['-', '-', 'fired']);
    const open = { state: 'firing', severity: 'warning' } as const;
    expect(kinds(run([good, good, unknown, unknown, good], { open }).transitions)).toEqual(['-', '-', '-', '-', 'resolved']);
    expect(run([unknown, unknown, unknown, unknown], { open }).open).toEqual(open);
  });

  it('resolves an open alert at once when its subject is gone, saying why, and clears every streak', () => {
    const gone: Verdict = { kind: 'gone', reason: 'endpoint:ep_1 no longer exists' };
    const open = { state: 'acknowledged', severity: 'critical' } as const;
    expect(step({ bad: 0, critical: 0, good: 1 }, open, gone, POLICY)).toEqual({
      streaks: NO_STREAKS,
      transition: { kind: 'resolved', value: null, message: 'endpoint:ep_1 no longer exists' },
    });
    // No open alert: nothing to resolve, and a bad streak can no longer fire.
    expect(step({ bad: 1, critical: 1, good: 0 }, undefined, gone, POLICY)).toEqual({ streaks: NO_STREAKS, transition: undefined });
  });

  it('fires again after a resolve (the evaluator re-opens the same alert, count + 1)', () => {
    const flapping = run([warning, warning, good, good, good, warning, warning]);
    expect(kinds(flapping.transitions)).toEqual(['-', 'fired', '-', '-', 'resolved', '-', 'fired']);
  });

  it('lets a figure in the dead band neither fire nor resolve: it ends both streaks', () => {
    expect(kinds(run([warning, between, warning]).transitions)).toEqual(['-', '-', '-']);
    const open = { state: 'firing', severity: 'warning' } as const;
    const hovering = run([good, good, between, good, good, between, warning, between], { open });
    expect(kinds(hovering.transitions)).toEqual(['-', '-', '-', '-', '-', '-', '-', '-']);
    expect(hovering.open).toEqual(open);
    expect(hovering.streaks).toEqual(NO_STREAKS);
    expect(kinds(run([between, good, good, good], { open }).transitions)).toEqual(['-', '-', '-', 'resolved']);
  });

  it('fires once, not again and again, for a count hovering at its limit', () => {
    // Sockets 10,000 ± 50 for an hour of 5 s evaluations: over and under the limit at random.
    let seed = 42;
    const noise = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    const verdicts = Array.from({ length: 720 }, () => judgeCount(Math.round(10_000 + noise() * 100), 10_000, 'open connections'));
    expect(verdicts.filter((verdict) => verdict.kind === 'bad').length).toBeGreaterThan(100);
    const hour = run(verdicts);
    expect(kinds(hour.transitions).filter((kind) => kind === 'fired')).toEqual(['fired']);
    expect(hour.open).toEqual({ state: 'firing', severity: 'warning' });
    // Clearly under the limit (≤ 90 %) it resolves, once.
    const after = run([...verdicts, ...[8_000, 8_000, 8_000].map((count) => judgeCount(count, 10_000, 'open connections'))]);
    expect(kinds(after.transitions).filter((kind) => kind !== '-')).toEqual(['fired', 'resolved']);
  });

  it('forgets a bad streak whose last bad verdict is older than the window, and nothing else', () => {
    const window = 300_000;
    const bad = { bad: 1, critical: 1, good: 0 };
    expect(expire(bad, window + 1, window)).toEqual(NO_STREAKS);
    expect(expire(bad, window, window)).toEqual(bad);
    expect(expire({ bad: 0, critical: 0, good: 2 }, 10 * window, window)).toEqual({ bad: 0, critical: 0, good: 2 });
    // One bad verdict, hours of unknown ones, one more bad verdict: not two in a row.
    expect(step(expire(bad, 14 * 3_600_000, window), undefined, warning, POLICY).transition).toBeUndefined();
    expect(step(expire(bad, 5_000, window), undefined, warning, POLICY).transition).toMatchObject({ kind: 'fired' });
  });

  it('keeps streaks only while they can still fire or resolve something', () => {
    expect(worthKeeping({ bad: 1, critical: 0, good: 0 }, false)).toBe(true);
    expect(worthKeeping({ bad: 0, critical: 0, good: 2 }, true)).toBe(true);
    expect(worthKeeping({ bad: 0, critical: 0, good: 2 }, false)).toBe(false);
    expect(worthKeeping(NO_STREAKS, true)).toBe(false);
  });
});

describe('alert rules (judgements)', () => {
  const thresholds = { minSamples: 20, criticalRatio: 0.5, warningRatio: 0.2 };

  it('judges a webhook failure rate only over the minimum sample: one failure of one attempt is unknown', () => {
    expect(judgeFailureRate({ attempts: 1, failures: 1 }, thresholds).kind).toBe('unknown');
    expect(judgeFailureRate({ attempts: 19, failures: 19 }, thresholds).kind).toBe('unknown');
    expect(judgeFailureRate({ attempts: 0, failures: 0 }, thresholds).kind).toBe('unknown');
    expect(judgeFailureRate({ attempts: 20, failures: 11 }, thresholds)).toMatchObject({ kind: 'bad', severity: 'critical', value: 0.55 });
    expect(judgeFailureRate({ attempts: 20, failures: 10 }, thresholds)).toMatchObject({ kind: 'bad', severity: 'warning', value: 0.5 });
    expect(judgeFailureRate({ attempts: 20, failures: 5 }, thresholds)).toMatchObject({ kind: 'bad', severity: 'warning' });
    // Good only at or under 90 % of the warning ratio (18 %); in between, neither.
    expect(judgeFailureRate({ attempts: 20, failures: 4 }, thresholds)).toEqual({ kind: 'between', value: 0.2 });
    expect(judgeFailureRate({ attempts: 50, failures: 9 }, thresholds)).toEqual({ kind: 'good', value: 0.18, message: 'back within limit: 18 % of 50 webhook attempts failed' });
  });

  it('reads a good ratio under the minimum sample as good (it may resolve), any other as unknown (it never fires)', () => {
    expect(judgeFailureRate({ attempts: 10, failures: 0 }, thresholds)).toEqual({ kind: 'good', value: 0 });
    expect(judgeFailureRate({ attempts: 19, failures: 3 }, thresholds)).toMatchObject({ kind: 'good' });
    expect(judgeFailureRate({ attempts: 10, failures: 2 }, thresholds).kind).toBe('unknown');
    expect(judgeFailureRate({ attempts: 10, failures: 9 }, thresholds).kind).toBe('unknown');
  });

  it('judges dead letters, outbox age, CDC bytes and cluster counts against their limits', () => {
    expect(judgeDeadLetters(0, 0)).toEqual({ kind: 'good', value: 0, message: 'back within limit: 0 webhook deliveries dead-lettered in the window' });
    expect(judgeDeadLetters(1, 0)).toMatchObject({ kind: 'bad', severity: 'warning', value: 1 });
    expect(judgeBacklogAge(null, 60)).toMatchObject({ kind: 'good', value: 0 });
    expect(judgeBacklogAge(61, 60)).toMatchObject({ kind: 'bad', severity: 'warning', value: 61 });
    expect(judgeBytes(null, 100, 'critical', 'retained WAL').kind).toBe('unknown');
    expect(judgeBytes(101, 100, 'critical', 'retained WAL')).toMatchObject({ kind: 'bad', severity: 'critical' });
    expect(judgeBytes(100, 100, 'warning', 'lag')).toEqual({ kind: 'between', value: 100 });
    expect(judgeBytes(90, 100, 'warning', 'lag')).toEqual({ kind: 'good', value: 90, message: 'back within limit: lag is 90 B (limit 100 B)' });
    expect(judgeBacklogAge(55, 60)).toEqual({ kind: 'between', value: 55 });
    expect(judgeBacklogAge(54, 60)).toEqual({ kind: 'good', value: 54, message: 'back within limit: the oldest outbox row has waited 54 s (limit 60 s)' });
    expect(judgeCount(10_001, 10_000, 'open connections')).toMatchObject({ kind: 'bad', severity: 'warning', message: '10001 open connections (limit 10000)' });
    expect(judgeCount(10_000, 10_000, 'open connections').kind).toBe('between');
    expect(judgeCount(9_000, 10_000, 'open connections').kind).toBe('good');
  });

  it('says a good figure in words, back within its limit, for the alert it resolves', () => {
    expect(judgeCount(0, 3, 'open connections')).toEqual({ kind: 'good', value: 0, message: 'back within limit: 0 open connections (limit 3)' });
  });
});
