import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, gql, nextChange, saveMappingOk, setUpCdc, socketFor, subscribeChanges } from '../helpers/cdc.ts';
import { MODES, modeEnv } from '../helpers/events.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { useTimeZone } from '../helpers/time-zone.ts';

/*
 * CDC row values reach every reader in one form, their JSON one (a `date` its calendar day, a
 * timestamp its ISO instant, bytea what JSON makes of a Buffer), whatever the log: so `changes`,
 * `records` and `events(where:)` judge a row the same in the embedded and the full (Redis) mode.
 */

const READER = { tenant: 'a', permissions: ['crm.contacts.read', 'crm.read'] };
const RECORDS = 'query($f: JSON) { records(model: "contacts", filter: $f) { nodes { id record } } }';
/**
 * Clauses on a date and a timestamptz column, with an operand in another zone than the value's, and
 * on a bytea column as Postgres prints it (a Buffer in the embedded log, its JSON form in Redis).
 */
const DATE_FILTER = { birthday: 'eq.2024-06-01', signed_up_at: 'gte.2024-06-01T12:00:00+02:00', avatar: 'gte.\\x0102' };

describe('CDC value forms', () => {
  it.each(MODES)('judges date, timestamp and bytea columns alike in changes, records and events(where:) (%s log)', async (mode) => {
    const setup = await setUpCdc({ env: modeEnv(mode) });
    await setup.source.query('ALTER TABLE contacts ADD COLUMN birthday date, ADD COLUMN signed_up_at timestamptz, ADD COLUMN avatar bytea');
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const subscribers = setup.server.stats().subscribers;
    const filtered = await subscribeChanges(setup, READER, { m: 'contacts', f: DATE_FILTER });
    const topic = await socketFor(setup, READER);
    topic.send({
      id: 'e',
      type: 'subscribe',
      payload: {
        query: 'subscription($w: EventWhere) { events(topic: "crm.contact-events", where: $w) { payload } }',
        variables: { w: { field: 'payload.signed_up_at', gte: '2024-06-01' } },
      },
    });
    await waitFor(() => setup.server.stats().subscribers === subscribers + 2);

    const insert = 'INSERT INTO contacts (tenant_id, name, birthday, signed_up_at, avatar) VALUES ($1, $2, $3, $4, $5)';
    await setup.source.query(insert, ['a', 'early', '2024-05-31', '2024-05-31 10:30:00+00', Buffer.from([1, 2])]);
    await setup.source.query(insert, ['a', 'match', '2024-06-01', '2024-06-01 10:30:00+00', Buffer.from([1, 2])]);

    const created = await nextChange(filtered);
    const expected = { name: 'match', birthday: '2024-06-01', signed_up_at: '2024-06-01T10:30:00.000Z', avatar: { type: 'Buffer', data: [1, 2] } };
    expect(created).toMatchObject({ operation: 'CREATED', record: expected });

    const onTopic = await topic.nextMessage();
    expect(onTopic).toMatchObject({ id: 'e', type: 'next', payload: { data: { events: { payload: expected } } } });

    const body = await gql(setup.server, await signHs256(READER), RECORDS, { f: DATE_FILTER });
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    const nodes = (body.data?.['records'] as { nodes: { id: string; record: Record<string, unknown> }[] }).nodes;
    expect(nodes).toEqual([{ id: created.id, record: created.record }]);
  });
});

describe('CDC date and timestamp values', () => {
  it('gives a timestamp without time zone its wall clock as UTC, and infinite or far dates as Postgres prints them, whatever the TZ', async () => {
    useTimeZone('Asia/Tokyo');
    const setup = await setUpCdc();
    await setup.source.query(
      'ALTER TABLE contacts ADD COLUMN seen_at timestamp, ADD COLUMN stamps timestamp[], ADD COLUMN until timestamptz, ADD COLUMN ends_on date, ADD COLUMN archived_on date',
    );
    await saveMappingOk(setup, { ...CONTACTS_MAPPING, softDeleteColumn: 'archived_on' });
    const changes = await subscribeChanges(setup, READER, { m: 'contacts' });

    const insert = 'INSERT INTO contacts (tenant_id, name, seen_at, stamps, until, ends_on, archived_on) VALUES ($1, $2, $3, $4, $5, $6, $7)';
    // Archived for ever or till a day past JS dates: soft-deleted, so never a change and never a record.
    await setup.source.query(insert, ['a', 'archived', null, null, null, null, 'infinity']);
    await setup.source.query(insert, ['a', 'archived far', null, null, null, null, '294276-12-31']);
    const stamps = '{"2024-06-01 10:30:00","0044-03-15 10:00:00 BC",infinity,"294276-12-31 23:59:59"}';
    await setup.source.query(insert, ['a', 'kept', '2024-06-01 10:30:00', stamps, 'infinity', '294276-12-31', null]);

    const created = await nextChange(changes);
    const expected = {
      name: 'kept',
      seen_at: '2024-06-01T10:30:00.000Z',
      stamps: ['2024-06-01T10:30:00.000Z', '-000043-03-15T10:00:00.000Z', 'infinity', '294276-12-31 23:59:59'],
      until: 'infinity',
      ends_on: '294276-12-31',
      archived_on: null,
    };
    expect(created).toMatchObject({ operation: 'CREATED', record: expected });

    const filter = { seen_at: 'eq.2024-06-01T10:30:00Z', until: 'gt.2100-01-01', ends_on: 'is.notnull' };
    const body = await gql(setup.server, await signHs256(READER), RECORDS, { f: filter });
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    const nodes = (body.data?.['records'] as { nodes: { id: string; record: Record<string, unknown> }[] }).nodes;
    expect(nodes).toEqual([{ id: created.id, record: created.record }]);
  });
});
