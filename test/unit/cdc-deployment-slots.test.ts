/**
 * A deployment's slot names and walsender name (`deployment-slots.ts`): one slot per deployment
 * and database, the names of before kept by a deployment that read CDC then, and a walsender
 * taken as the deployment's own only under its own name.
 */
import { describe, expect, it } from 'vitest';
import { deploymentNaming, withApplicationName } from '../../src/pipeline/cdc/deployment-slots.ts';
import { defaultReplicationNames } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { assertSlotName } from '../../src/pipeline/cdc/wal/replication-setup.ts';
import type { SourceConnections } from '../../src/pipeline/cdc/wal/source-connections.ts';

const CRM = { systemIdentifier: '7301234567890123456', database: 'crm' };

describe('deployment slot names', () => {
  it("names a database's slot per deployment, after the database's own name, and keeps the publication the database's", () => {
    const one = deploymentNaming({ id: 'a3f1c2e4-0000-4000-8000-000000000001', legacySlotNames: false });
    const other = deploymentNaming({ id: 'a3f1c2e4-0000-4000-8000-000000000002', legacySlotNames: false });
    const plain = defaultReplicationNames(CRM);
    expect(one.derived(CRM).slotName).toBe(`${plain.slotName}_${one.tag}`);
    expect(one.tag).toMatch(/^[0-9a-f]{12}$/);
    expect(other.derived(CRM).slotName).not.toBe(one.derived(CRM).slotName);
    expect(one.derived(CRM).publicationName).toBe(plain.publicationName);
    expect(other.derived(CRM).publicationName).toBe(plain.publicationName);
    expect(() => assertSlotName(one.derived(CRM).slotName)).not.toThrow();
    // The same id, the same names: every instance of a deployment, and every start, reads one slot.
    expect(deploymentNaming({ id: 'a3f1c2e4-0000-4000-8000-000000000001', legacySlotNames: false }).derived(CRM)).toEqual(one.derived(CRM));
  });

  it('keeps the names of before for a deployment that read CDC before deployments had their own', () => {
    const upgraded = deploymentNaming({ id: 'a3f1c2e4-0000-4000-8000-000000000001', legacySlotNames: true });
    expect(upgraded.derived(CRM)).toEqual(defaultReplicationNames(CRM));
  });

  it("takes a walsender as its own under its own name only (and, upgraded, under the previous versions' shared one)", () => {
    const fresh = deploymentNaming({ id: 'one', legacySlotNames: false });
    const upgraded = deploymentNaming({ id: 'one', legacySlotNames: true });
    const another = deploymentNaming({ id: 'two', legacySlotNames: false });
    expect(fresh.applicationName).toBe(`tributary-cdc/${fresh.tag}`);
    expect(fresh.owns(fresh.applicationName)).toBe(true);
    expect(fresh.owns(another.applicationName)).toBe(false);
    expect(fresh.owns('tributary-cdc')).toBe(false);
    expect(fresh.owns(null)).toBe(false);
    expect(upgraded.owns('tributary-cdc')).toBe(true);
    expect(upgraded.owns(another.applicationName)).toBe(false);
  });
});

describe('the replication connection of a deployment', () => {
  const connections = (connectionString: string): SourceConnections => ({
    withClient: () => Promise.reject(new Error('not used')),
    replicationConfig: () => ({ connectionString, application_name: 'tributary-cdc', keepAlive: true }),
    retirePooledConnections: () => {},
    dispose: () => Promise.resolve(),
  });

  it("carries the deployment's application_name, over one the URL sets (pg would let the URL's win)", () => {
    const config = withApplicationName(connections('postgres://u:p@db.internal:5432/crm?application_name=crm-sync&sslmode=require'), 'tributary-cdc/abc').replicationConfig();
    expect(config.application_name).toBe('tributary-cdc/abc');
    const url = new URL(config.connectionString!);
    expect(url.searchParams.has('application_name')).toBe(false);
    expect(url.searchParams.get('sslmode')).toBe('require');
    expect(url.password).toBe('p');
    expect(config.keepAlive).toBe(true);
  });

  it('leaves a URL without application_name as it is', () => {
    const url = 'postgres://u:p%40ss@db.internal/crm';
    expect(withApplicationName(connections(url), 'tributary-cdc/abc').replicationConfig()).toMatchObject({ connectionString: url, application_name: 'tributary-cdc/abc' });
  });
});
