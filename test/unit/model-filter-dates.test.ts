import pg from 'pg';
import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it, onTestFinished } from 'vitest';
import { evaluateMapping } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import { toRowChange } from '../../src/pipeline/cdc/wal/pgoutput-decode.ts';
import { compileEventWhere } from '../../src/pipeline/filters/event-filter.ts';
import { matchesModelFilter, parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

/** Postgres type OIDs of the columns below. */
const INT4 = 23;
const DATE = 1082;
const DATE_ARRAY = 1182;
const TIMESTAMPTZ = 1184;
const BYTEA = 17;

const COLUMNS: readonly (readonly [string, number])[] = [
  ['id', INT4],
  ['birthday', DATE],
  ['holidays', DATE_ARRAY],
  ['signed_up_at', TIMESTAMPTZ],
  ['avatar', BYTEA],
];

/** An insert as pg-logical-replication hands it over: each text value parsed by pg's parser for its type. */
function insertOf(texts: Readonly<Record<string, string>>): Pgoutput.MessageInsert {
  const row: Record<string, unknown> = {};
  const columns = COLUMNS.map(([name, typeOid]) => {
    const parser = pg.types.getTypeParser(typeOid) as (text: string) => unknown;
    row[name] = parser(texts[name] ?? '');
    return { name, flags: name === 'id' ? 1 : 0, typeOid, typeMod: -1, typeSchema: null, typeName: null, parser };
  });
  const relation: Pgoutput.MessageRelation = { tag: 'relation', relationOid: 1, schema: 'crm', name: 'contacts', replicaIdentity: 'full', columns, keyColumns: ['id'] };
  return { tag: 'insert', relation, new: row };
}

const TEXTS = { id: '1', birthday: '2024-06-01', holidays: '{2024-12-25,NULL}', signed_up_at: '2024-06-01 10:30:00+00', avatar: '\\x0102' };

function useTimeZone(zone: string): void {
  const before = process.env['TZ'];
  process.env['TZ'] = zone;
  onTestFinished(() => {
    if (before === undefined) delete process.env['TZ'];
    else process.env['TZ'] = before;
  });
}

describe('CDC row values in their JSON form', () => {
  it.each(['UTC', 'Pacific/Kiritimati', 'America/Los_Angeles'])('keeps a date its calendar day and a timestamp its ISO instant, whatever the TZ (%s)', (zone) => {
    useTimeZone(zone);
    const change = toRowChange(insertOf(TEXTS), '00000000/00001000', 0);
    const event = evaluateMapping(mapping(), change);
    expect(event?.record).toEqual({
      id: 1,
      birthday: '2024-06-01',
      holidays: ['2024-12-25', null],
      signed_up_at: '2024-06-01T10:30:00.000Z',
      avatar: { type: 'Buffer', data: [1, 2] },
    });
    // What the Redis log reads back is what the embedded log holds.
    expect(JSON.parse(JSON.stringify(event?.record))).toEqual(event?.record);
    expect(event?.payload).toEqual(event?.record);
  });

  it('routes a bytea key as Postgres prints it, as before', () => {
    const change = toRowChange(insertOf(TEXTS), '00000000/00001000', 0);
    expect(evaluateMapping(mapping({ key: ['avatar'] }), change)?.entityKey).toBe('\\x0102');
  });
});

describe('model filters on dates and timestamps as text', () => {
  const record = { birthday: '2024-06-01', signed_up_at: '2024-06-01T10:30:00.000Z', note: 'soon' };
  const matches = (filter: Record<string, string | string[]>) => matchesModelFilter(parseModelFilter(filter), record);

  it('compares an ISO timestamp text with a date or timestamp operand by instant, in any zone', () => {
    expect(matches({ signed_up_at: 'eq.2024-06-01T10:30:00Z' })).toBe(true);
    expect(matches({ signed_up_at: 'eq.2024-06-01T12:30:00+02:00' })).toBe(true);
    expect(matches({ signed_up_at: 'gte.2024-06-01T12:00:00+02:00' })).toBe(true);
    expect(matches({ signed_up_at: 'lt.2024-06-01T12:00:00+02:00' })).toBe(false);
    expect(matches({ signed_up_at: ['gte.2024-06-01', 'lt.2024-06-02'] })).toBe(true);
    expect(matches({ signed_up_at: 'in.(2024-06-01T10:30:00Z)' })).toBe(true);
  });

  it('compares a calendar day with a date operand', () => {
    expect(matches({ birthday: 'eq.2024-06-01' })).toBe(true);
    expect(matches({ birthday: 'gt.2024-05-31' })).toBe(true);
    expect(matches({ birthday: 'lt.2024-06-01' })).toBe(false);
  });

  it('keeps comparing other text as text', () => {
    expect(matches({ note: 'eq.soon' })).toBe(true);
    expect(matches({ note: 'gt.2024-06-01' })).toBe(true);
    expect(matches({ signed_up_at: 'neq.yesterday' })).toBe(true);
  });

  it('gives events(where:) on a mapping topic the same answer whatever the log', () => {
    const change = toRowChange(insertOf(TEXTS), '00000000/00001000', 0);
    const payload = evaluateMapping(mapping(), change)!.payload;
    const event = (body: Readonly<Record<string, unknown>>): RealtimeEvent => ({
      id: 'evt_1',
      topic: 'crm.contacts',
      source: 'database',
      type: 'contacts.created',
      payload: body,
      metadata: { timestamp: 0, scope: { app: 'crm', env: 'prod', tenant: undefined } },
      cursor: 'x',
    });
    const where = compileEventWhere({ field: 'payload.signed_up_at', gte: '2024-06-01' })!;
    expect(where(event(payload))).toBe(true);
    expect(where(event(JSON.parse(JSON.stringify(payload)) as Record<string, unknown>))).toBe(true);
  });
});
