import { describe, expect, it } from 'vitest';
import { TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';

/** A browser's preflight for a cross-origin POST with a token. */
function preflight(url: string, origin: string): Promise<Response> {
  return fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });
}

/** A cross-origin request as a browser sends it (the page's origin in `Origin`). */
function simpleRequest(url: string, origin: string): Promise<Response> {
  return fetch(`${url}?query=${encodeURIComponent('{ __typename }')}`, { headers: { origin, accept: 'application/json' } });
}

describe('CORS', () => {
  it('allows any origin outside production when CORS_ORIGINS is unset, never with credentials', async () => {
    const server = await startTestServer({});
    const allowed = await preflight(server.graphqlUrl, 'https://anywhere.example');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(allowed.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();

    const simple = await simpleRequest(server.graphqlUrl, 'https://anywhere.example');
    expect(simple.status).toBe(200);
    expect(simple.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
    expect(simple.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('allows nothing cross-origin in production when CORS_ORIGINS is unset', async () => {
    const server = await startTestServer({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET });
    const refused = await preflight(server.graphqlUrl, 'https://anywhere.example');
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.headers.get('access-control-allow-methods')).toBeNull();
    const simple = await simpleRequest(server.graphqlUrl, 'https://anywhere.example');
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows exactly the listed origins when CORS_ORIGINS is set', async () => {
    const server = await startTestServer({
      NODE_ENV: 'production',
      JWT_SECRET: TEST_SECRET,
      CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
    });
    for (const origin of ['https://app.example.com', 'http://localhost:5173']) {
      const allowed = await preflight(server.graphqlUrl, origin);
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(origin);
      expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
      const simple = await simpleRequest(server.graphqlUrl, origin);
      expect(simple.headers.get('access-control-allow-origin')).toBe(origin);
      expect(simple.headers.get('vary')).toContain('Origin');
    }
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com']) {
      expect((await preflight(server.graphqlUrl, origin)).headers.get('access-control-allow-origin')).toBeNull();
      expect((await simpleRequest(server.graphqlUrl, origin)).headers.get('access-control-allow-origin')).toBeNull();
    }
  });
});
