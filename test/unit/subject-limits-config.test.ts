/**
 * The per-subject rate limits' configuration (`config-events.ts`): defaults, and a refusal at boot
 * that names the variable. What the limits do is in `test/integration/subject-rate-limits.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('per-subject rate limits configuration', () => {
  it('defaults to 1,000 publishes and broadcasts a second and 600 new topic streams a minute per subject', () => {
    expect(loadConfig({}).events).toMatchObject({ publishRatePerSecond: 1000, topicNewStreamsPerMinute: 600 });
  });

  it('reads PUBLISH_RATE_PER_SECOND and TOPIC_NEW_STREAMS_PER_MINUTE', () => {
    const config = loadConfig({ PUBLISH_RATE_PER_SECOND: '50000', TOPIC_NEW_STREAMS_PER_MINUTE: '10' });
    expect(config.events).toMatchObject({ publishRatePerSecond: 50_000, topicNewStreamsPerMinute: 10 });
  });

  it.each([
    [{ PUBLISH_RATE_PER_SECOND: '0' }, 'PUBLISH_RATE_PER_SECOND must be an integer from 1 to 10000000 (got "0")'],
    [{ TOPIC_NEW_STREAMS_PER_MINUTE: 'unlimited' }, 'TOPIC_NEW_STREAMS_PER_MINUTE must be an integer from 1 to 10000000 (got "unlimited")'],
  ])('refuses %o with one line naming the variable', (env, expected) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(expected);
  });
});
