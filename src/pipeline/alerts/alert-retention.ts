/**
 * Deletes the alerts nobody will see change again: resolved for longer than the retention and
 * about a subject that no longer exists, as its rule's `gone` says — an endpoint deleted, an
 * outbox or CDC source removed, a cluster alert left in an earlier OPERATOR_SCOPE — not one merely
 * out of its rule's sight (`GoneSubject.exists`: an endpoint disabled). Without it
 * `alerts` grows with every subject there ever was. An alert whose subject exists is kept however
 * long ago it resolved: it re-opens on its row (`count` grows) when it fires again.
 *
 * Run by the evaluator after an evaluation (one process at a time), a page per evaluation: a pass
 * over every long-resolved alert at most every PASS_EVERY_MS, in id order, so a pass reads the
 * table once however many alerts it keeps. Only the rules read in that evaluation are asked, as
 * for resolving: a rule that cannot be read deletes nothing; an alert of a rule this version does
 * not have is kept.
 */
import type { Queryable } from '../../db/database.ts';
import type { Logger } from '../../logger.ts';
import type { AlertRule, RuleSubject } from './alert-rule.ts';
import { deleteLongResolved, listLongResolved } from './alert-store.ts';

/** Alerts looked at per evaluation at most. */
const PAGE = 500;

/** How often a pass over the long-resolved alerts starts at most. */
const PASS_EVERY_MS = 3_600_000;

export const DEFAULT_ALERT_RETENTION_MS = 30 * 24 * 3_600_000;

export interface AlertRetentionOptions {
  readonly db: Queryable;
  /** How long an alert whose subject is gone is kept after it resolved, in ms. @default 30 days (DEFAULT_ALERT_RETENTION_MS) */
  readonly retentionMs: number;
  /** The rules' window, in ms, for their `gone`. */
  readonly windowMs: number;
  readonly now: () => number;
  readonly logger: Logger;
}

export interface AlertRetention {
  /** Deletes from the next page, when a pass is under way or due; returns how many were deleted. */
  step(rules: ReadonlyMap<string, AlertRule>): Promise<number>;
}

export function createAlertRetention(options: AlertRetentionOptions): AlertRetention {
  const { db, retentionMs } = options;
  /** Where the pass under way goes on after; undefined when none is. */
  let after: string | undefined;
  let passStarted = -Infinity;
  return {
    async step(rules) {
      if (after === undefined) {
        if (options.now() - passStarted < PASS_EVERY_MS) return 0;
        passStarted = options.now();
        after = '';
      }
      const page = await listLongResolved(db, retentionMs, after, PAGE);
      const gone: string[] = [];
      for (const [name, rule] of rules) {
        const ofRule = page.filter((alert) => alert.rule === name);
        if (rule.gone === undefined || ofRule.length === 0) continue;
        const ids = new Map<RuleSubject, string>(ofRule.map((alert) => [{ subject: alert.subject, scope: alert.scope }, alert.id]));
        for (const { subject, exists } of await rule.gone([...ids.keys()], { windowMs: options.windowMs })) {
          // Out of sight (a disabled endpoint) is not gone for good: kept, as any subject that exists.
          const id = exists === true ? undefined : ids.get(subject);
          if (id !== undefined) gone.push(id);
        }
      }
      const deleted = await deleteLongResolved(db, gone, retentionMs);
      // Moved on only once the page is done: a page that failed is read again.
      after = page.length < PAGE ? undefined : page.at(-1)!.id;
      if (deleted > 0) options.logger.info({ deleted, retentionMs }, 'resolved alerts of subjects that no longer exist deleted');
      return deleted;
    },
  };
}
