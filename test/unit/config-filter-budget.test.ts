/**
 * WS_MAX_FILTER_BYTES_PER_SUBJECT in the configuration: its default, a value read, and the one
 * line that stops the start for a bad one.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected loadConfig to throw');
}

describe('WS_MAX_FILTER_BYTES_PER_SUBJECT', () => {
  it('is 256 KiB by default', () => {
    expect(loadConfig({}).limits.maxFilterBytesPerSubject).toBe(262_144);
  });

  it('reads a value from 1024 bytes to 1 GiB', () => {
    expect(loadConfig({ WS_MAX_FILTER_BYTES_PER_SUBJECT: '1024' }).limits.maxFilterBytesPerSubject).toBe(1024);
    expect(loadConfig({ WS_MAX_FILTER_BYTES_PER_SUBJECT: '1073741824' }).limits.maxFilterBytesPerSubject).toBe(1_073_741_824);
  });

  it.each(['0', '1023', '1073741825', '-1', '256k', '262144.5', '0x40000'])('refuses WS_MAX_FILTER_BYTES_PER_SUBJECT=%o with one line naming it', (value) => {
    const message = configError({ WS_MAX_FILTER_BYTES_PER_SUBJECT: value });
    expect(message).toMatch(/^Invalid configuration: WS_MAX_FILTER_BYTES_PER_SUBJECT must be an integer from 1024 to 1073741824/);
    expect(message).not.toContain('\n');
  });
});
