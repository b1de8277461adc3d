import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';

const SECRET = 'a-secret-that-is-at-least-32-bytes-long!';

describe('CORS_ORIGINS', () => {
  it('defaults to any origin outside production with JWT verification and to none in production', () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).cors).toEqual({ origins: '*' });
    expect(loadConfig({ NODE_ENV: 'test', JWT_JWKS_URL: 'https://issuer.example/jwks.json' }).cors).toEqual({ origins: '*' });
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET }).cors).toEqual({ origins: [] });
  });

  it('defaults to none in development mode, where every caller is an admin; an explicit CORS_ORIGINS wins', () => {
    expect(loadConfig({}).cors).toEqual({ origins: [] });
    expect(loadConfig({ NODE_ENV: 'test' }).cors).toEqual({ origins: [] });
    expect(loadConfig({ CORS_ORIGINS: 'http://localhost:5173' }).cors).toEqual({ origins: ['http://localhost:5173'] });
    expect(loadConfig({ CORS_ORIGINS: '*' }).cors).toEqual({ origins: '*' });
  });

  it('reads a comma-separated list of origins, or * for any', () => {
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET, CORS_ORIGINS: ' https://a.example , http://localhost:5173,' }).cors).toEqual({
      origins: ['https://a.example', 'http://localhost:5173'],
    });
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET, CORS_ORIGINS: '*' }).cors).toEqual({ origins: '*' });
  });

  it.each([
    ['a path', 'https://a.example/app', 'https://a.example/app'],
    ['a trailing slash', 'https://a.example/', 'https://a.example/'],
    ['no scheme', 'a.example', 'a.example'],
    ['another scheme', 'ftp://a.example', 'ftp://a.example'],
  ])('refuses an origin with %s, naming it', (_name, value, named) => {
    expect(() => loadConfig({ CORS_ORIGINS: value })).toThrow(
      `Invalid configuration: CORS_ORIGINS must be * or comma-separated origins like https://app.example.com (got "${named}")`,
    );
  });

  it('refuses * mixed with origins', () => {
    expect(() => loadConfig({ CORS_ORIGINS: '*,https://a.example' })).toThrow('Invalid configuration: CORS_ORIGINS must be * alone or a list of origins');
  });
});
