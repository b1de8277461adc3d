/**
 * `events(topic, where: EventWhere)` for the peers that are not Tributary: the part of Tributary's
 * `EventWhere` the fan-out workload sends (one `field` — a dot path into the event — compared with
 * one operator), evaluated per subscriber and event as a graphql-ws server with a PubSub filters:
 * yoga's `pipe(…, filter(…))`, graphql-subscriptions' `withFilter`. Anything else is refused at
 * subscribe time. The workload's `where` values select every event (see `fanout-payload.ts`), so a
 * filtered subscription receives the same frames as an unfiltered one.
 */
import { GraphQLError } from 'graphql';

/** The SDL of the input, as in schema.graphql but for the combinators. */
export const EVENT_WHERE_SDL = /* GraphQL */ `
  input EventWhere {
    field: String
    eq: JSON
    ne: JSON
    gt: JSON
    gte: JSON
    lt: JSON
    lte: JSON
  }
`;

/** The input as graphql-js hands it over. */
export interface EventWhere {
  readonly field?: string | null;
  readonly eq?: unknown;
  readonly ne?: unknown;
  readonly gt?: unknown;
  readonly gte?: unknown;
  readonly lt?: unknown;
  readonly lte?: unknown;
}

const OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'] as const;
type Operator = (typeof OPERATORS)[number];

/** A predicate over an event (a plain object); undefined when there is no filter. */
export function compileWhere(where: EventWhere | null | undefined): ((event: Readonly<Record<string, unknown>>) => boolean) | undefined {
  if (where === null || where === undefined) return undefined;
  const given = OPERATORS.filter((operator) => where[operator] !== undefined && where[operator] !== null);
  const [operator] = given;
  if (typeof where.field !== 'string' || where.field === '' || operator === undefined || given.length > 1) {
    throw new GraphQLError('where: one field and one of eq, ne, gt, gte, lt, lte', { extensions: { code: 'BAD_USER_INPUT' } });
  }
  const path = where.field.split('.');
  const operand = where[operator];
  return (event) => compare(operator, valueAt(event, path), operand);
}

function valueAt(event: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let value: unknown = event;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** As Tributary's filter: `eq`/`ne` on scalars, `gt`…`lte` number with number or string with string. */
function compare(operator: Operator, value: unknown, operand: unknown): boolean {
  if (operator === 'eq') return value === operand;
  if (operator === 'ne') return value !== operand;
  if (typeof value === 'number' && typeof operand === 'number') return order(operator, value, operand);
  if (typeof value === 'string' && typeof operand === 'string') return order(operator, value, operand);
  return false;
}

function order<T extends number | string>(operator: Exclude<Operator, 'eq' | 'ne'>, a: T, b: T): boolean {
  switch (operator) {
    case 'gt':
      return a > b;
    case 'gte':
      return a >= b;
    case 'lt':
      return a < b;
    case 'lte':
      return a <= b;
  }
}
