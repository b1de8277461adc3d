/**
 * What the API does with alerts: list an environment's (a caller with a tenant sees its tenant's
 * only) and acknowledge one. An acknowledgement is announced at once like every change
 * (`alert.acknowledged`, after any earlier change not announced yet); if that fails, the next
 * evaluation announces it.
 */
import type { Database } from '../../db/database.ts';
import { ErrorCode, faultOf, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { Scope } from '../scope.ts';
import { announcePending } from './alert-announcer.ts';
import type { AlertState, Severity } from './alert-rule.ts';
import { acknowledgeAlert, getAlert, listAlerts, type AlertPosition, type AlertRecord } from './alert-store.ts';

export interface AlertQuery {
  readonly states?: readonly AlertState[] | undefined;
  readonly severities?: readonly Severity[] | undefined;
  /** 1–200. @default 50 */
  readonly first?: number | undefined;
  /** An `endCursor` of an earlier page. */
  readonly after?: string | undefined;
}

export interface AlertPage {
  readonly nodes: readonly AlertRecord[];
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
}

export interface AlertAdmin {
  /** The scope's alerts, most recently fired first. @throws BAD_USER_INPUT for a bad `first` or `after` */
  list(scope: Scope, query: AlertQuery): Promise<AlertPage>;
  /**
   * Acknowledges a firing alert (`by`: the caller's subject); an acknowledged one is returned as it is.
   * @throws BAD_USER_INPUT (not an alert id), NOT_FOUND (no such alert in the scope) or CONFLICT with `details.status = "RESOLVED"` (and `state`, its older name)
   */
  acknowledge(scope: Scope, id: string, by: string): Promise<AlertRecord>;
}

const MAX_PAGE = 200;

export function createAlertAdmin(options: { readonly db: Database; readonly router: Pick<EventRouter, 'route'>; readonly logger: Logger }): AlertAdmin {
  const { db } = options;
  const visible = (scope: Scope, alert: AlertRecord | undefined): alert is AlertRecord =>
    alert !== undefined &&
    alert.scope.app === scope.app &&
    alert.scope.env === scope.env &&
    (scope.tenant === undefined || alert.scope.tenant === scope.tenant);

  return {
    async list(scope, query) {
      const first = query.first ?? 50;
      if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, `first must be from 1 to ${MAX_PAGE}`, { details: { field: 'first' } });
      }
      const rows = await listAlerts(db, {
        ...scope,
        states: query.states && query.states.length > 0 ? query.states : undefined,
        severities: query.severities && query.severities.length > 0 ? query.severities : undefined,
        after: query.after === undefined ? undefined : decodeCursor(query.after),
        limit: first + 1,
      });
      const page = rows.slice(0, first);
      const last = page.at(-1);
      return { nodes: page.map((row) => row.alert), endCursor: last ? encodeCursor(last.position) : null, hasNextPage: rows.length > first };
    },

    async acknowledge(scope, id, by) {
      // Checked before the id reaches Postgres (a NUL is refused there as an internal error) or an
      // answer (NOT_FOUND names it): any string arrives here.
      if (!ALERT_ID.test(id)) {
        throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'id is not an alert id ("alrt_" and 22 letters, digits, _ or -)', { details: { field: 'id' } });
      }
      const found = await getAlert(db, id);
      if (!visible(scope, found)) throw new TributaryError(ErrorCode.NOT_FOUND, `No alert ${id}`, { details: { field: 'id' } });
      if (found.state === 'resolved') throw new TributaryError(ErrorCode.CONFLICT, `Alert ${id} is resolved already`, { details: { status: 'RESOLVED', state: 'RESOLVED' } });
      const acknowledged = await acknowledgeAlert(db, id, by);
      if (!acknowledged) {
        // Acknowledged already, or resolved meanwhile: answer with what it is now.
        const now = (await getAlert(db, id))!;
        if (now.state === 'resolved') throw new TributaryError(ErrorCode.CONFLICT, `Alert ${id} is resolved already`, { details: { status: 'RESOLVED', state: 'RESOLVED' } });
        return now;
      }
      await announcePending(db, options.router).catch((error: unknown) =>
        options.logger.warn({ err: error, fault: faultOf(error), alert: id }, 'acknowledgement written but not announced yet; the next evaluation announces it'),
      );
      return acknowledged;
    },
  };
}

/**
 * A cursor is the last alert's position (its last firing to the microsecond, and its id), not the
 * alert: the alert may fire again before the next page is asked for, which would move it to the top
 * and make that page repeat this one.
 */
function encodeCursor(position: AlertPosition): string {
  return Buffer.from(JSON.stringify([position.lastFiredAt, position.id])).toString('base64url');
}

const FIRED_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
/** What `alertId` (alert-store.ts) makes: a prefix and 22 characters of a base64url digest. */
const ALERT_ID = /^alrt_[A-Za-z0-9_-]{22}$/;

function decodeCursor(cursor: string): AlertPosition {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = undefined;
  }
  if (Array.isArray(decoded) && decoded.length === 2) {
    const [lastFiredAt, id] = decoded as unknown[];
    if (typeof lastFiredAt === 'string' && typeof id === 'string' && FIRED_AT.test(lastFiredAt) && ALERT_ID.test(id) && isRealTime(lastFiredAt)) return { lastFiredAt, id };
  }
  throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'after must be an endCursor of this listing', { details: { field: 'after' } });
}

/** Whether the time exists (no 30 February, no hour 24): Postgres would refuse it. */
function isRealTime(text: string): boolean {
  const ms = Date.parse(text);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 19) === text.slice(0, 19);
}
