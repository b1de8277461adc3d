import { describe, expect, it } from 'vitest';
import { startPrivatePostgres, startPrivateRedis } from '../helpers/services.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { waitFor } from '../helpers/wait-for.ts';

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

describe('health and readiness', () => {
  it('answers /health with 200 and /ready with 200 when the database answers', async () => {
    const server = await startTestServer();
    expect(await getJson(`${server.url}/health`)).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await getJson(`${server.url}/ready`)).toEqual({ status: 200, body: { ready: true, checks: { database: 'ok' } } });
  });

  it('answers 404 for paths it does not serve', async () => {
    const server = await startTestServer();
    const response = await fetch(`${server.url}/nope`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'Not found', code: 'NOT_FOUND' });
  });

  it('serves /metrics to anyone without METRICS_TOKEN', async () => {
    const server = await startTestServer();
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('tributary_hot_topic_events_per_second');
  });

  it('with METRICS_TOKEN serves /metrics only to its bearer: 401 without it or with another, and /health stays open', async () => {
    const token = 'metrics-token-0123456789';
    const server = await startTestServer({ METRICS_TOKEN: token });
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Bearer ${token}x`, `Basic ${token}`, token]) {
      const refused = await fetch(`${server.url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
      expect({ authorization, status: refused.status, challenge: refused.headers.get('www-authenticate') }).toEqual({ authorization, status: 401, challenge: 'Bearer' });
      const body = await refused.text();
      expect(body).toContain('METRICS_TOKEN');
      expect(body).not.toContain('tributary_');
    }
    const allowed = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toContain('tributary_hot_topic_events_per_second');
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('turns /ready to 503 while Redis is stopped and back to 200 when it returns', async () => {
    const redis = await startPrivateRedis();
    const server = await startTestServer({ REDIS_URL: redis.url });
    expect(await getJson(`${server.url}/ready`)).toEqual({
      status: 200,
      body: { ready: true, checks: { database: 'ok', redis: 'ok' } },
    });

    await redis.stop();
    const down = await waitFor(
      async () => {
        const result = await getJson(`${server.url}/ready`);
        return result.status === 503 ? result : undefined;
      },
      { timeoutMs: 10_000, message: '/ready did not turn 503 after Redis stopped' },
    );
    expect(down?.body).toEqual({ ready: false, checks: { database: 'ok', redis: 'failing' } });
    // Liveness does not depend on Redis.
    expect((await getJson(`${server.url}/health`)).status).toBe(200);

    await redis.start();
    await waitFor(async () => (await getJson(`${server.url}/ready`)).status === 200, {
      timeoutMs: 15_000,
      message: '/ready did not return to 200 after Redis came back',
    });
  });

  it('turns /ready to 503 while Postgres is stopped and back to 200 when it returns', async () => {
    const postgres = await startPrivatePostgres();
    const server = await startTestServer({ DATABASE_URL: postgres.url });
    expect((await getJson(`${server.url}/ready`)).status).toBe(200);

    await postgres.stop('immediate');
    const down = await waitFor(
      async () => {
        const result = await getJson(`${server.url}/ready`);
        return result.status === 503 ? result : undefined;
      },
      { timeoutMs: 10_000, message: '/ready did not turn 503 after Postgres stopped' },
    );
    expect(down?.body).toEqual({ ready: false, checks: { database: 'failing' } });

    await postgres.start();
    await waitFor(async () => (await getJson(`${server.url}/ready`)).status === 200, {
      timeoutMs: 15_000,
      message: '/ready did not return to 200 after Postgres came back',
    });
  });
});
