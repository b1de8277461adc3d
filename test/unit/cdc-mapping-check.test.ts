import { describe, expect, it } from 'vitest';
import type { TableShape } from '../../src/pipeline/cdc/mapping/mapping-check.ts';
import { checkMappingAgainstTable } from '../../src/pipeline/cdc/mapping/mapping-check.ts';
import { publicationProblems } from '../../src/pipeline/cdc/mapping/mapping-source-check.ts';
import type { PublicationCoverage } from '../../src/pipeline/cdc/wal/replication-setup.ts';
import { mapping } from '../helpers/cdc-mappings.ts';


describe('checkMappingAgainstTable', () => {
  const columns = ['id', 'tenant_id', 'status', 'name', 'bio'];
  const table = (overrides: Partial<TableShape> = {}): TableShape => ({
    replicaIdentity: 'default',
    keyColumns: ['id'],
    primaryKey: ['id'],
    columns,
    ...overrides,
  });
  const FIX = 'ALTER TABLE "crm"."contacts" REPLICA IDENTITY FULL;';

  it('finds nothing wrong with a mapping the table can serve', () => {
    const m = mapping({ tenantColumn: 'tenant_id', when: { changed: 'id' }, payload: { id: '$row.id', name: '$row.name' } });
    expect(checkMappingAgainstTable(m, table({ keyColumns: ['tenant_id', 'id'] }))).toEqual([]);
    expect(checkMappingAgainstTable(mapping({ tenantColumn: 'tenant_id', key: ['id'] }), table({ replicaIdentity: 'full' }))).toEqual([]);
    expect(checkMappingAgainstTable(mapping({ tenantColumn: 'tenant_id', events: ['insert', 'update'] }), table())).toEqual([]);
    expect(checkMappingAgainstTable(mapping({ tenantColumn: 'tenant_id' }), table({ replicaIdentity: 'index', keyColumns: ['tenant_id', 'id'] }))).toEqual([]);
  });

  it('refuses tenant-routed deletes without REPLICA IDENTITY FULL or the tenant in the key, saying how to fix it', () => {
    const problems = checkMappingAgainstTable(mapping({ tenantColumn: 'tenant_id' }), table());
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('tenantColumn: without REPLICA IDENTITY FULL, deletes on crm.contacts carry only the key (id)');
    expect(problems[0]).toContain(FIX);
    expect(problems[0]).toContain('REPLICA IDENTITY USING INDEX');
    expect(problems[0]).toContain('remove "delete" from events');
  });

  it('lists each unknown column once with every place that uses it', () => {
    const m = mapping({
      when: { eq: ['$row.kind', 'a'] },
      topic: 'crm.{$row.kind}',
      payload: { email: '$row.email' },
      tenantColumn: 'org_id',
      key: ['id'],
      events: ['insert'],
    });
    expect(checkMappingAgainstTable(m, table())).toEqual([
      'column "kind" does not exist in crm.contacts (used at when.eq[0], topic)',
      'column "email" does not exist in crm.contacts (used at payload.email)',
      'column "org_id" does not exist in crm.contacts (used at tenantColumn)',
    ]);
  });

  it('refuses conditions, topics and keys that deletes cannot provide, but not payload values', () => {
    const m = mapping({ events: ['delete'], when: { eq: ['$row.status', 'a'] }, topic: 'crm.{$row.status}', key: ['id', 'name'], payload: { bio: '$row.bio' } });
    const problems = checkMappingAgainstTable(m, table());
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^key\[1\]: .*"name" is unknown for deleted rows/);
    expect(problems[1]).toMatch(/^when\.eq\[0\]: .*deletes would never be emitted/);
    expect(problems[2]).toMatch(/^topic: .*the topic cannot be built/);
    for (const problem of problems) expect(problem).toContain(FIX);
  });

  it('refuses $old and changed on non-key columns of updates without REPLICA IDENTITY FULL', () => {
    const m = mapping({ events: ['update'], when: { changed: 'status' }, payload: { before: '$old.name', id: '$old.id' } });
    const problems = checkMappingAgainstTable(m, table());
    expect(problems).toEqual([
      `when.changed: updates on crm.contacts carry no old row without REPLICA IDENTITY FULL, so "changed" would hold for every update. Fix: run \`${FIX}\``,
      `payload.before: updates on crm.contacts carry no old row without REPLICA IDENTITY FULL, so $old.name is never known on updates. Fix: run \`${FIX}\``,
    ]);
    expect(checkMappingAgainstTable(m, table({ replicaIdentity: 'full' }))).toEqual([]);
  });

  it('accepts a mapping without key on a REPLICA IDENTITY FULL table with a primary key, which is the default key', () => {
    expect(checkMappingAgainstTable(mapping(), table({ replicaIdentity: 'full' }))).toEqual([]);
    expect(checkMappingAgainstTable(mapping(), table({ replicaIdentity: 'full', primaryKey: ['tenant_id', 'id'] }))).toEqual([]);
  });

  it('refuses a mapping without key on a REPLICA IDENTITY FULL table without a primary key, asking for one or a key', () => {
    const noPrimaryKey = table({ replicaIdentity: 'full', keyColumns: [], primaryKey: [] });
    const problems = checkMappingAgainstTable(mapping(), noPrimaryKey);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('crm.contacts has no primary key and the mapping sets no "key"');
    expect(problems[0]).toContain('would change with every update');
    expect(problems[0]).toContain('Fix: add a primary key to crm.contacts, or set "key" to the columns that identify a row');
    expect(checkMappingAgainstTable(mapping({ key: ['id'] }), noPrimaryKey)).toEqual([]);
  });

  it('refuses a default key that deletes cannot provide: a primary key outside the REPLICA IDENTITY index', () => {
    const byIndex = table({ replicaIdentity: 'index', keyColumns: ['tenant_id', 'name'], primaryKey: ['id'] });
    const problems = checkMappingAgainstTable(mapping({ events: ['delete'] }), byIndex);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^key: .*carry only the key \(tenant_id, name\), so the primary key column "id", the default entity key, is unknown for deleted rows/);
    expect(problems[0]).toContain(FIX);
    expect(problems[0]).toContain('set "key" to columns among (tenant_id, name)');
    expect(checkMappingAgainstTable(mapping({ events: ['delete'], key: ['tenant_id', 'name'] }), byIndex)).toEqual([]);
    expect(checkMappingAgainstTable(mapping({ events: ['insert', 'update'] }), byIndex)).toEqual([]);
  });

  it('uses the change key without a primary key when the REPLICA IDENTITY index provides one', () => {
    const byIndex = table({ replicaIdentity: 'index', keyColumns: ['tenant_id', 'id'], primaryKey: [] });
    expect(checkMappingAgainstTable(mapping({ tenantColumn: 'tenant_id' }), byIndex)).toEqual([]);
  });

  it('refuses update and delete events on a table without replica identity', () => {
    const problems = checkMappingAgainstTable(mapping({ key: ['id'] }), table({ replicaIdentity: 'nothing' }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('REPLICA IDENTITY NOTHING');
    expect(problems[0]).toContain(FIX);
    expect(checkMappingAgainstTable(mapping({ events: ['insert'], key: ['id'] }), table({ replicaIdentity: 'nothing' }))).toEqual([]);
  });

  it('takes the primary key as entity key without a replica identity, and asks for one or a key without either', () => {
    expect(checkMappingAgainstTable(mapping({ events: ['insert'] }), table({ replicaIdentity: 'nothing' }))).toEqual([]);
    const keyless =
      'crm.contacts has no primary key and the mapping sets no "key", so rows have no entity key. ' +
      'Fix: add a primary key to crm.contacts, or set "key" to the columns that identify a row';
    const noPrimaryKey = table({ keyColumns: [], primaryKey: [] });
    expect(checkMappingAgainstTable(mapping({ events: ['insert'] }), noPrimaryKey)).toEqual([keyless]);
    const problems = checkMappingAgainstTable(mapping(), noPrimaryKey);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('has no replica identity (no primary key)');
    expect(problems[1]).toBe(keyless);
    expect(checkMappingAgainstTable(mapping({ events: ['insert'], key: ['id'] }), noPrimaryKey)).toEqual([]);
  });

  it('quotes table names in the fix, so reserved words work', () => {
    const [problem] = checkMappingAgainstTable(mapping({ table: 'user', tenantColumn: 'tenant_id' }), table());
    expect(problem).toContain('ALTER TABLE "public"."user" REPLICA IDENTITY FULL;');
  });

  it('checks softDeleteColumn: it must exist, and updates must carry the old row (REPLICA IDENTITY FULL) to tell a soft delete', () => {
    const soft = mapping({ tenantColumn: 'tenant_id', softDeleteColumn: 'deleted_at' });
    const withColumn = [...columns, 'deleted_at'];
    expect(checkMappingAgainstTable(soft, table({ replicaIdentity: 'full', columns: withColumn }))).toEqual([]);
    expect(checkMappingAgainstTable(soft, table({ replicaIdentity: 'full' }))).toEqual([
      'column "deleted_at" does not exist in crm.contacts (used at softDeleteColumn)',
    ]);
    const keyed = mapping({ events: ['insert', 'update'], softDeleteColumn: 'deleted_at' });
    const problems = checkMappingAgainstTable(keyed, table({ columns: withColumn }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('softDeleteColumn: updates on crm.contacts carry no old row without REPLICA IDENTITY FULL');
    expect(problems[0]).toContain(FIX);
  });
});

describe('publicationProblems', () => {
  const coverage = (overrides: Partial<PublicationCoverage> = {}): PublicationCoverage => ({
    exists: true,
    published: false,
    viaRoot: false,
    partitioned: false,
    root: null,
    ...overrides,
  });
  const m = mapping({ tenantColumn: 'tenant_id' });

  it('finds nothing wrong when the publication streams the table under its name, or does not exist yet (the reader creates it with the mapped tables)', () => {
    expect(publicationProblems(m, 'pub', coverage({ published: true }))).toEqual([]);
    expect(publicationProblems(m, 'pub', coverage({ exists: false }))).toEqual([]);
  });

  it('names the statement that adds a table the publication leaves out', () => {
    expect(publicationProblems(m, 'pub', coverage())).toEqual([
      'publication "pub" does not include crm.contacts, so none of its changes would be delivered. Fix: run `ALTER PUBLICATION "pub" ADD TABLE "crm"."contacts";`',
    ]);
  });

  it("names publish_via_partition_root for a partitioned table whose changes go out under its partitions' names", () => {
    const [problem] = publicationProblems(m, 'pub', coverage({ partitioned: true }));
    expect(problem).toContain("crm.contacts is partitioned, and publication \"pub\" publishes its changes under each partition's name");
    expect(problem).toContain('ALTER PUBLICATION "pub" SET (publish_via_partition_root = true);');
  });

  it('says to map the root of a partition whose changes are published as the root table’s', () => {
    expect(publicationProblems(m, 'pub', coverage({ viaRoot: true, root: 'crm.people' }))).toEqual([
      'crm.contacts is a partition of crm.people, and publication "pub" publishes its changes as crm.people\'s, so none of its changes would be delivered. Fix: map crm.people',
    ]);
  });
});
