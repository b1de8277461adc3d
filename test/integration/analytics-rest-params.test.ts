/**
 * The REST routes read each query parameter once and exactly as documented: `limit=1e1` (or `0x0A`,
 * ` 10`) is not the integer 10 but BAD_USER_INPUT, and a parameter given twice
 * (`window=1m&window=1h`) is refused rather than silently read as its first value — 400 with the
 * parameter named, as every other wrong parameter. Real server, HS256 tokens.
 */
import { describe, expect, it } from 'vitest';
import { startTestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';

describe('REST query parameters', () => {
  it('refuses an integer not written in decimal digits and a parameter given twice, naming it; a plain one is read', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const admin = await signHs256({ tenant: undefined, roles: ['admin'] });
    const get = async (path: string) => {
      const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${admin}` } });
      return { status: response.status, body: (await response.json()) as { errors?: { message: string; extensions: { code: string; field?: string } }[] } };
    };
    const refused = (field: string) => ({ status: 400, body: { errors: [{ extensions: { code: 'BAD_USER_INPUT', field } }] } });

    expect(await get('/api/metrics/hot-topics?limit=1e1')).toMatchObject(refused('limit'));
    expect(await get('/api/metrics/hot-topics?limit=0x0A')).toMatchObject(refused('limit'));
    expect(await get('/api/metrics/hot-topics?limit=%2010')).toMatchObject(refused('limit'));
    expect(await get('/api/metrics/hot-topics?limit=5&limit=50')).toMatchObject(refused('limit'));
    expect(await get('/api/metrics/hot-topics?window=1m&window=1h')).toMatchObject(refused('window'));
    expect(await get('/api/metrics/hot-topics?by=events&by=bytes')).toMatchObject(refused('by'));
    expect(await get('/api/metrics/hot-topics?tenant=a&tenant=b')).toMatchObject(refused('tenant'));
    expect(await get('/api/alerts?first=1e1')).toMatchObject(refused('first'));
    expect(await get('/api/alerts?status=firing&status=resolved')).toMatchObject(refused('status'));
    expect((await get('/api/metrics/hot-topics?window=1m&window=1h')).body.errors?.[0]?.message).toContain('once');

    expect(await get('/api/metrics/hot-topics?limit=10&window=1h')).toMatchObject({ status: 200, body: { window: '1h', topics: [] } });
    expect(await get('/api/alerts?first=10&status=firing,acknowledged')).toMatchObject({ status: 200, body: { alerts: [] } });
  });
});
