import { describe, expect, it } from 'vitest';
import { InternalError } from '../../src/errors.ts';
import { compareLsn, formatLsn, lsnBytesBetween, normalizeLsn, parseLsn } from '../../src/pipeline/cdc/wal/lsn.ts';

describe('LSN helpers', () => {
  it('parses both halves as hex into one 64-bit position', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/16B3748')).toBe(0x16b3748n);
    expect(parseLsn('1/0')).toBe(1n << 32n);
    expect(parseLsn('ffffffff/FFFFFFFF')).toBe((1n << 64n) - 1n);
  });

  it('formats padded upper case, so that strings compare like positions', () => {
    expect(formatLsn(0x16b3748n)).toBe('00000000/016B3748');
    expect(formatLsn((2n << 32n) | 0xabn)).toBe('00000002/000000AB');
    expect(normalizeLsn('a/1')).toBe('0000000A/00000001');
    expect(formatLsn(parseLsn('1234ABCD/0000FFFF'))).toBe('1234ABCD/0000FFFF');
  });

  it('compares and subtracts across the half boundary', () => {
    expect(compareLsn('0/FFFFFFFF', '1/0')).toBe(-1);
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('00000001/00000000', '1/0')).toBe(0);
    expect(lsnBytesBetween('0/FFFFFFFF', '1/10')).toBe(17n);
    expect(lsnBytesBetween('1/10', '0/FFFFFFFF')).toBe(-17n);
  });

  it('rejects text that is not an LSN, and positions outside 64 bits', () => {
    for (const text of ['', '0', '0/', '/0', 'x/0', '0/1/2', '123456789/0', ' 0/0']) {
      // Every LSN comes from Postgres, never from a caller: a bad one is an internal fault, masked for clients.
      expect(() => parseLsn(text), text).toThrow(expect.objectContaining({ name: 'InternalError', fault: 'WAL_LSN' }));
      expect(() => parseLsn(text), text).toThrow(InternalError);
    }
    expect(() => formatLsn(-1n)).toThrow(/outside/);
    expect(() => formatLsn(1n << 64n)).toThrow(expect.objectContaining({ fault: 'WAL_LSN' }));
  });
});
