/**
 * Misspelt settings are told, not ignored (src/config-unknown.ts): a near miss of a setting's name
 * names the setting; any other name under a prefix only Tributary's settings use is told too; the
 * rest of the environment (PATH, NODE_OPTIONS, REDIS_HOST of another tool) is left alone.
 */
import { expect, it } from 'vitest';
import { SETTING_NAMES } from '../../src/config.ts';
import { unknownSettings } from '../../src/config-unknown.ts';

it('tells misspelt and unknown Tributary settings, and nothing else', () => {
  const environment = {
    DATABSE_URL: 'postgres://db/platform',
    METRIC_TOKEN: 'x'.repeat(32),
    TRIBUTRY_ROLE: 'server',
    WEBHOOK_RETRY_DAYS: '3',
    DATABASE_URL: 'postgres://db/platform',
    PATH: '/usr/bin',
    NODE_OPTIONS: '--max-old-space-size=4096',
    REDIS_HOST: 'cache',
    PORTS: '4000',
    npm_config_cache: '/tmp',
  };
  expect(unknownSettings(environment, SETTING_NAMES)).toEqual([
    { name: 'DATABSE_URL', suggestion: 'DATABASE_URL' },
    { name: 'METRIC_TOKEN', suggestion: 'METRICS_TOKEN' },
    { name: 'TRIBUTRY_ROLE', suggestion: 'TRIBUTARY_ROLE' },
    { name: 'WEBHOOK_RETRY_DAYS', suggestion: undefined },
  ]);
  expect(unknownSettings({ DATABASE_URL: 'postgres://db', JWT_SECRET: 's', TRIBUTARY_ROLE: 'all' }, SETTING_NAMES)).toEqual([]);
});
