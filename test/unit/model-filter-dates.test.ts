import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { evaluateMapping } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import { columnParser } from '../../src/pipeline/cdc/row-values.ts';
import { toRowChange } from '../../src/pipeline/cdc/wal/pgoutput-decode.ts';
import { compileEventWhere } from '../../src/pipeline/filters/event-filter.ts';
import { matchesModelFilter, parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';
import type { RealtimeEvent } from '../../src/pipeline/events/envelope.ts';
import { mapping } from '../helpers/cdc-mappings.ts';
import { useTimeZone } from '../helpers/time-zone.ts';

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

/** An insert as pg-logical-replication hands it over: each text value parsed by the parser the reader gives its type. */
function insertOf(texts: Readonly<Record<string, string>>): Pgoutput.MessageInsert {
  const row: Record<string, unknown> = {};
  const columns = COLUMNS.map(([name, typeOid]) => {
    const parser = columnParser(typeOid);
    row[name] = parser(texts[name] ?? '');
    return { name, flags: name === 'id' ? 1 : 0, typeOid, typeMod: -1, typeSchema: null, typeName: null, parser };
  });
  const relation: Pgoutput.MessageRelation = { tag: 'relation', relationOid: 1, schema: 'crm', name: 'contacts', replicaIdentity: 'full', columns, keyColumns: ['id'] };
  return { tag: 'insert', relation, new: row };
}

const TEXTS = { id: '1', birthday: '2024-06-01', holidays: '{2024-12-25,NULL}', signed_up_at: '2024-06-01 10:30:00+00', avatar: '\\x0102' };


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
      avatar: Buffer.from([1, 2]),
    });
    // What the Redis log reads back is what the embedded log holds, bytea aside (a Buffer, JSON's at the edge).
    const { avatar, ...rest } = event?.record ?? {};
    expect(JSON.parse(JSON.stringify(rest))).toEqual(rest);
    expect(JSON.parse(JSON.stringify(avatar))).toEqual({ type: 'Buffer', data: [1, 2] });
    expect(event?.payload).toEqual(event?.record);
  });

  it.each(['UTC', 'Asia/Tokyo', 'America/Los_Angeles'])('reads a timestamp without time zone as its wall clock in UTC, and keeps what is no JS Date as Postgres prints it (%s)', (zone) => {
    useTimeZone(zone);
    const timestamp = columnParser(1114);
    expect(timestamp('2024-06-01 10:30:00')).toBe('2024-06-01T10:30:00.000Z');
    // A daylight-saving gap in Los Angeles: no such local time, but a wall clock all the same.
    expect(timestamp('2024-03-10 02:30:00.123456')).toBe('2024-03-10T02:30:00.123Z');
    expect(timestamp('0099-12-31 23:59:59')).toBe('0099-12-31T23:59:59.000Z');
    expect(timestamp('0001-02-29 00:00:00 BC')).toBe('0000-02-29T00:00:00.000Z');
    expect(timestamp('0044-03-15 10:00:00 BC')).toBe('-000043-03-15T10:00:00.000Z');
    expect(timestamp('294276-12-31 23:59:59')).toBe('294276-12-31 23:59:59');
    expect(timestamp('infinity')).toBe('infinity');
    expect(columnParser(1115)('{"2024-06-01 10:30:00",NULL,-infinity}')).toEqual(['2024-06-01T10:30:00.000Z', null, '-infinity']);
    expect(columnParser(1184)('2024-06-01 19:30:00+09')).toBe('2024-06-01T10:30:00.000Z');
    expect(columnParser(1184)('infinity')).toBe('infinity');
    expect(columnParser(1184)('294276-12-31 23:59:59+00')).toBe('294276-12-31 23:59:59+00');
    expect(columnParser(DATE)('-infinity')).toBe('-infinity');
    expect(columnParser(DATE)('294276-12-31')).toBe('294276-12-31');
    expect(columnParser(DATE_ARRAY)('{{2024-06-01,infinity},{NULL,"0044-03-15 BC"}}')).toEqual([['2024-06-01', 'infinity'], [null, '0044-03-15 BC']]);
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

  it('puts infinity after and -infinity before every date or time, and neither is null', () => {
    const far = { until: 'infinity', since: '-infinity' };
    const judge = (filter: Record<string, string>) => matchesModelFilter(parseModelFilter(filter), far);
    expect(judge({ until: 'gt.2024-06-01' })).toBe(true);
    expect(judge({ until: 'lt.2024-06-01T00:00:00Z' })).toBe(false);
    expect(judge({ since: 'lt.0001-01-01' })).toBe(true);
    expect(judge({ since: 'gte.2024-06-01' })).toBe(false);
    expect(judge({ until: 'eq.infinity' })).toBe(true);
    expect(judge({ until: 'is.null' })).toBe(false);
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
