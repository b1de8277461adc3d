/**
 * The alerts listing's cursor is a position (the last alert's last firing, to the microsecond, and
 * its id), on a real Postgres: the next page follows that position even when the alert re-fired
 * meanwhile (moving to the top), alerts fired within the same millisecond are neither skipped nor
 * repeated, and anything but an `endCursor` is BAD_USER_INPUT on the field `after`.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ErrorCode } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createAlertAdmin } from '../../src/pipeline/alerts/alert-admin.ts';
import { fireAlert, resolveAlert } from '../../src/pipeline/alerts/alert-store.ts';
import { createDeliveryFixture } from '../helpers/delivery-fixture.ts';

const logger = createLogger({ level: 'silent' });
const SCOPE = { app: 'app', env: 'env', tenant: undefined };

async function setUp() {
  const fixture = await createDeliveryFixture();
  onTestFinished(() => fixture.dispose());
  const { db } = fixture;
  const names = new Map<string, string>();
  /** Fires alert `name`, then dates its last firing `firedAt` (an SQL timestamptz expression). */
  const fire = async (name: string, firedAt: string) => {
    const alert = (await fireAlert(db, { rule: 'outbox.backlog_age', subject: `outbox:${name}`, scope: SCOPE, severity: 'warning', value: 1, message: name }))!;
    names.set(alert.id, name);
    await db.query(`UPDATE alerts SET last_fired_at = ${firedAt} WHERE id = $1`, [alert.id]);
    return alert;
  };
  const admin = createAlertAdmin({ db, router: { route: () => Promise.resolve({} as never) }, logger });
  const list = async (first: number, after?: string) => {
    const page = await admin.list(SCOPE, { first, after });
    return { names: page.nodes.map((alert) => names.get(alert.id)), endCursor: page.endCursor, hasNextPage: page.hasNextPage };
  };
  return { db, admin, fire, list };
}

describe('the alerts listing cursor', () => {
  it('resumes after the position of the last alert, though that alert fired again since', async () => {
    const { db, fire, list } = await setUp();
    await fire('A', "now() - interval '30 minutes'");
    const b = await fire('B', "now() - interval '20 minutes'");
    await fire('C', "now() - interval '10 minutes'");
    const page1 = await list(2);
    expect(page1).toMatchObject({ names: ['C', 'B'], hasNextPage: true });

    await resolveAlert(db, b.id, 0);
    await fireAlert(db, { rule: b.rule, subject: b.subject, scope: SCOPE, severity: 'warning', value: 1, message: 'again' });
    expect(await list(2, page1.endCursor!)).toMatchObject({ names: ['A'], hasNextPage: false });
  });

  it('keeps alerts fired within one millisecond apart by the microsecond', async () => {
    const { fire, list } = await setUp();
    const base = "date_trunc('milliseconds', now())";
    for (const [name, micros] of [['A', 100], ['B', 200], ['C', 300], ['D', 400]] as const) await fire(name, `${base} + interval '${micros} microseconds'`);
    const seen: (string | undefined)[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await list(1, after);
      seen.push(...page.names);
      if (!page.hasNextPage) break;
      after = page.endCursor!;
    }
    expect(seen).toEqual(['D', 'C', 'B', 'A']);
  });

  it('refuses anything but an endCursor with BAD_USER_INPUT on the field after', async () => {
    const { admin, fire } = await setUp();
    const alert = await fire('A', 'now()');
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const after of [alert.id, 'not a cursor', encode(['2024-02-30T00:00:00.000000Z', alert.id]), encode(['2024-01-01T00:00:00Z', alert.id]), encode(['2024-01-01T00:00:00.000000Z', "x' OR 1=1"]), encode({})]) {
      await expect(admin.list(SCOPE, { after }), after).rejects.toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'after' } });
    }
  });
});
