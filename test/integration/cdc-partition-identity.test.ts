import { describe, expect, it } from 'vitest';
import { gql, nextChange, setUpCdc, subscribeChanges } from '../helpers/cdc.ts';
import { waitFor } from '../helpers/wait-for.ts';

/*
 * Postgres sends a partition's changes with that partition's replica identity: REPLICA IDENTITY
 * FULL on the root reaches no partition. A mapping of the root is checked against each partition.
 */

const ORDERS = { name: 'orders', table: 'orders', events: ['insert', 'update', 'delete'], topic: 'shop.order-events', module: 'shop', model: 'orders', tenantColumn: 'tenant_id' };
const SAVE = 'mutation($m: JSON!) { saveCdcMapping(mapping: $m) { name warnings } }';

describe('CDC of partitioned tables: replica identity', () => {
  it("refuses a mapping of a FULL root whose partitions are not FULL, naming each partition's statement, and delivers once they are", async () => {
    const setup = await setUpCdc();
    await setup.source.query(`CREATE TABLE orders (id int, tenant_id text NOT NULL, region text NOT NULL, total int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
    await setup.source.query(`CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu')`);
    await setup.source.query(`CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us')`);
    await setup.source.query(`ALTER TABLE orders REPLICA IDENTITY FULL`);

    const refused = await gql(setup.server, setup.admin, SAVE, { m: ORDERS });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
    const message = String(refused.errors?.[0]?.message);
    expect(message).toContain('partition public.orders_eu of public.orders');
    expect(message).toContain('ALTER TABLE "public"."orders_eu" REPLICA IDENTITY FULL;');
    expect(message).toContain('ALTER TABLE "public"."orders_us" REPLICA IDENTITY FULL;');

    await setup.source.query(`ALTER TABLE orders_eu REPLICA IDENTITY FULL`);
    await setup.source.query(`ALTER TABLE orders_us REPLICA IDENTITY FULL`);
    const saved = await gql(setup.server, setup.admin, SAVE, { m: ORDERS });
    expect(saved.errors).toBeUndefined();
    const client = await subscribeChanges(setup, { tenant: 't', permissions: ['shop.orders.read'] }, { m: 'orders' });
    await waitFor(() => setup.server.stats().subscribers > 0);
    await setup.source.query(`INSERT INTO orders VALUES (2, 't', 'us', 20)`);
    await setup.source.query(`DELETE FROM orders WHERE id = 2`);
    expect(await nextChange(client)).toMatchObject({ operation: 'CREATED', id: '2/us' });
    expect(await nextChange(client)).toMatchObject({ operation: 'DELETED', id: '2/us' });
  });
});
