/**
 * A tenant's admin naming another tenant on `createWebhookEndpoint` is answered FORBIDDEN, as
 * every other "another tenant" case is (the README's promise), and nothing is created. Real
 * server, real Postgres, HS256 tokens.
 */
import { describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer, type TestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';

const CREATE = 'mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id tenant } } }';
const LIST = '{ webhookEndpoints { id tenant } }';

async function ask(server: TestServer, token: string, query: string, variables?: Record<string, unknown>) {
  return postGraphQL(server.graphqlUrl, { query, ...(variables && { variables }) }, { authorization: `Bearer ${token}` });
}

describe('createWebhookEndpoint for another tenant', () => {
  it('answers FORBIDDEN to a tenant admin who names another tenant, and creates nothing', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
    const tenantAdmin = await signHs256({ tenant: 'tenant-a', roles: ['admin'] });
    const input = { url: 'http://127.0.0.1:9/in', events: ['*'], tenant: 'tenant-b' };

    const refused = await ask(server, tenantAdmin, CREATE, { input });

    expect(refused.body.data ?? null).toBeNull();
    expect(refused.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['FORBIDDEN']);
    const applicationAdmin = await signHs256({ tenant: undefined, roles: ['admin'] });
    expect((await ask(server, applicationAdmin, LIST)).body).toEqual({ data: { webhookEndpoints: [] } });
  });

  it('still creates the endpoint when the tenant admin names its own tenant', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
    const tenantAdmin = await signHs256({ tenant: 'tenant-a', roles: ['admin'] });

    const created = await ask(server, tenantAdmin, CREATE, { input: { url: 'http://127.0.0.1:9/in', events: ['*'], tenant: 'tenant-a' } });

    expect(created.body.errors).toBeUndefined();
    expect(created.body.data).toMatchObject({ createWebhookEndpoint: { endpoint: { tenant: 'tenant-a' } } });
  });
});
