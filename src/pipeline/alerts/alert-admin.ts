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
import { acknowledgeAlert, getAlert, listAlerts, type AlertRecord } from './alert-store.ts';

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
   * @throws NOT_FOUND (no such alert in the scope) or CONFLICT with `details.state = "RESOLVED"`
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
      const nodes = rows.slice(0, first);
      const last = nodes.at(-1);
      return { nodes, endCursor: last ? encodeCursor(last) : null, hasNextPage: rows.length > first };
    },

    async acknowledge(scope, id, by) {
      const found = await getAlert(db, id);
      if (!visible(scope, found)) throw new TributaryError(ErrorCode.NOT_FOUND, `No alert ${id}`, { details: { field: 'id' } });
      if (found.state === 'resolved') throw new TributaryError(ErrorCode.CONFLICT, `Alert ${id} is resolved already`, { details: { state: 'RESOLVED' } });
      const acknowledged = await acknowledgeAlert(db, id, by);
      if (!acknowledged) {
        // Acknowledged already, or resolved meanwhile: answer with what it is now.
        const now = (await getAlert(db, id))!;
        if (now.state === 'resolved') throw new TributaryError(ErrorCode.CONFLICT, `Alert ${id} is resolved already`, { details: { state: 'RESOLVED' } });
        return now;
      }
      await announcePending(db, options.router).catch((error: unknown) =>
        options.logger.warn({ err: error, fault: faultOf(error), alert: id }, 'acknowledgement written but not announced yet; the next evaluation announces it'),
      );
      return acknowledged;
    },
  };
}

/** A cursor is the last alert's id (ids are opaque already; a listing resumes after that row's position). */
function encodeCursor(alert: AlertRecord): string {
  return alert.id;
}

function decodeCursor(cursor: string): string {
  if (/^alrt_[A-Za-z0-9_-]{22}$/.test(cursor)) return cursor;
  throw new TributaryError(ErrorCode.BAD_USER_INPUT, 'after must be an endCursor of this listing', { details: { field: 'after' } });
}
