/**
 * The alert evaluator's lease in the platform database (`alert_evaluator`, migration 0009): which
 * process evaluates the rules, one at a time cluster-wide (`alert-evaluator.ts`). One function per
 * SQL statement.
 */
import type { Queryable } from '../../db/database.ts';

/** Takes the evaluator's lease when it is free, expired or already `holder`'s; true when held. */
export async function takeEvaluatorLease(db: Queryable, holder: string, ttlMs: number): Promise<boolean> {
  const { rows } = await db.query<{ holder: string }>(
    `INSERT INTO alert_evaluator (id, holder, expires_at) VALUES (1, $1, now() + make_interval(secs => $2))
     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE alert_evaluator.holder = excluded.holder OR alert_evaluator.expires_at < now()
     RETURNING holder`,
    [holder, ttlMs / 1000],
  );
  return rows.length > 0;
}

/**
 * Inside the transaction that writes an evaluation: whether `holder` still holds the lease, and
 * if its time ran out meanwhile, the lease renewed for `ttlMs`. Still held means nobody took it:
 * the lease changes hands only by `takeEvaluatorLease`, which needs it expired, and this
 * statement's row lock holds any taker back until the evaluation is written — the taker then
 * finds it renewed. So an evaluation slower than its lease is written when no other process
 * wanted the lease (one workers process, a slow database), and thrown away when one took it.
 * A lease still running is left as it is: the next evaluation's take renews it.
 */
export async function confirmEvaluatorLease(db: Queryable, holder: string, ttlMs: number): Promise<'held' | 'renewed' | 'lost'> {
  // The row returned is the row written: renewed when it now ends a whole lease after this
  // transaction began (a take, an earlier transaction, set it from an earlier `now()`).
  const { rows } = await db.query<{ renewed: boolean }>(
    `UPDATE alert_evaluator SET expires_at = CASE WHEN expires_at > now() THEN expires_at ELSE now() + make_interval(secs => $2) END
     WHERE id = 1 AND holder = $1
     RETURNING expires_at = now() + make_interval(secs => $2) AS renewed`,
    [holder, ttlMs / 1000],
  );
  const row = rows[0];
  if (row === undefined) return 'lost';
  return row.renewed ? 'renewed' : 'held';
}

/** Gives the lease up (on shutdown), so another process takes over at its next tick. */
export async function releaseEvaluatorLease(db: Queryable, holder: string): Promise<void> {
  await db.query('UPDATE alert_evaluator SET expires_at = now() WHERE id = 1 AND holder = $1', [holder]);
}
