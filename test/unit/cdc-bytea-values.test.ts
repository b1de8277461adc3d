import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { evaluateMapping } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import { columnParser } from '../../src/pipeline/cdc/row-values.ts';
import { toRowChange } from '../../src/pipeline/cdc/wal/pgoutput-decode.ts';
import { matchesModelFilter, parseModelFilter } from '../../src/pipeline/filters/model-filter.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

/*
 * A bytea column stays the Buffer pg decoded through the CDC hot path (JSON renders it at the edge as
 * `{"type":"Buffer","data":[…]}`), and a model filter judges it, or what the Redis log reads back of
 * it, as Postgres prints bytea (`\x0102`).
 */

const INT4 = 23;
const BYTEA = 17;
const JSONB = 3802;

function insertOf(row: Record<string, unknown>): Pgoutput.MessageInsert {
  const types: Record<string, number> = { id: INT4, avatar: BYTEA, doc: JSONB };
  const columns = Object.keys(row).map((name) => {
    const typeOid = types[name] ?? INT4;
    return { name, flags: name === 'id' ? 1 : 0, typeOid, typeMod: -1, typeSchema: null, typeName: null, parser: columnParser(typeOid) };
  });
  const relation: Pgoutput.MessageRelation = { tag: 'relation', relationOid: 1, schema: 'crm', name: 'contacts', replicaIdentity: 'full', columns, keyColumns: ['id'] };
  return { tag: 'insert', relation, new: row };
}

describe('bytea values on the CDC hot path', () => {
  it('keeps a bytea value the Buffer it was decoded as, in the record and the payload, and a jsonb value as parsed', () => {
    const avatar = Buffer.alloc(1_000_000, 7);
    const doc = { tags: ['a', 'b'], nested: { n: 1 } };
    const change = toRowChange(insertOf({ id: 1, avatar, doc }), '00000000/00001000', 0);
    const event = evaluateMapping(mapping(), change);
    expect(event?.record['avatar']).toBe(avatar);
    expect(event?.payload['avatar']).toBe(avatar);
    expect(event?.record['doc']).toBe(doc);
    // The wire form is JSON's, as before.
    expect(JSON.parse(JSON.stringify({ avatar: Buffer.from([1, 2]) }))).toEqual({ avatar: { type: 'Buffer', data: [1, 2] } });
  });

  it('judges a Buffer and its JSON form (what the Redis log reads back) alike, as Postgres prints bytea', () => {
    const bytes = Buffer.from([1, 2, 0xab]);
    const forms = [{ avatar: bytes }, JSON.parse(JSON.stringify({ avatar: bytes })) as Record<string, unknown>];
    const cases: readonly (readonly [string, boolean])[] = [
      ['eq.\\x0102ab', true],
      ['eq.\\x0102AB', true],
      ['neq.\\x0102ab', false],
      ['eq.\\x0102', false],
      ['gt.\\x0102', true],
      ['lt.\\x0103', true],
      ['gte.\\x02', false],
      ['in.(\\x00,\\x0102ab)', true],
      ['eq.hello', false],
      ['neq.hello', true],
    ];
    for (const [clause, expected] of cases) {
      for (const record of forms) expect(matchesModelFilter(parseModelFilter({ avatar: clause }), record), `${clause} on ${JSON.stringify(record)}`).toBe(expected);
    }
  });
});
