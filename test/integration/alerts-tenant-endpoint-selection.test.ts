/**
 * Alert events (`system.alerts`) are environment-wide — they carry no tenant — so a webhook endpoint
 * of a tenant never receives them. One selecting them (`system.alerts`, `system.alerts.*`,
 * `system.*`) used to be accepted and then stay silent; it is refused with BAD_USER_INPUT saying
 * why and what receives alerts instead, on creation and on update. An endpoint without a tenant
 * still selects them. Real server, real Postgres, HS256 tokens.
 */
import { describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id tenant events } } }';
const UPDATE = 'mutation($id: ID!, $input: WebhookEndpointUpdate!) { updateWebhookEndpoint(id: $id, input: $input) { id events } }';
const URL = 'http://127.0.0.1:9/in';

async function ask(server: TestServer, token: string, query: string, variables: Record<string, unknown>) {
  return (await postGraphQL(server.graphqlUrl, { query, variables }, { authorization: `Bearer ${token}` })).body;
}

describe('a tenant’s webhook endpoint selecting system.alerts', () => {
  it('is refused on creation and on update, saying alerts go to endpoints without a tenant; one without a tenant selects them', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
    const tenantAdmin = await signHs256({ tenant: 'tenant-a', roles: ['admin'] });
    const environmentAdmin = await signHs256({ tenant: undefined, roles: ['admin'] });

    for (const events of [['system.alerts'], ['orders.*', 'system.alerts.*'], ['system.*']]) {
      const refused = await ask(server, tenantAdmin, CREATE, { input: { url: URL, events } });
      expect(refused.data ?? null).toBeNull();
      expect(refused.errors).toMatchObject([
        { message: expect.stringContaining('environment-wide') as unknown, extensions: { code: 'BAD_USER_INPUT', field: 'events' } },
      ]);
    }
    // The environment's admin creating an endpoint for a tenant: the same.
    const forTenant = await ask(server, environmentAdmin, CREATE, { input: { url: URL, events: ['system.alerts'], tenant: 'tenant-b' } });
    expect(forTenant.errors).toMatchObject([{ extensions: { code: 'BAD_USER_INPUT', field: 'events' } }]);

    const created = await ask(server, tenantAdmin, CREATE, { input: { url: URL, events: ['orders.*', '*'] } });
    expect(created.errors).toBeUndefined();
    const id = (created.data as { createWebhookEndpoint: { endpoint: { id: string } } }).createWebhookEndpoint.endpoint.id;
    const update = await ask(server, tenantAdmin, UPDATE, { id, input: { events: ['system.alerts'] } });
    expect(update.errors).toMatchObject([{ extensions: { code: 'BAD_USER_INPUT', field: 'events' } }]);
    expect(update.errors?.[0]?.message).toContain('system.alerts');

    const environmentWide = await ask(server, environmentAdmin, CREATE, { input: { url: URL, events: ['system.alerts'] } });
    expect(environmentWide.errors).toBeUndefined();
    expect(environmentWide.data).toMatchObject({ createWebhookEndpoint: { endpoint: { tenant: null, events: ['system.alerts'] } } });
  });
});
