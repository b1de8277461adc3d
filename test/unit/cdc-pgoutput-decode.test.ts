import { describe, expect, it } from 'vitest';
import { ErrorCode, InternalError, isClientFacing } from '../../src/errors.ts';
import { openTransaction, protocolError } from '../../src/pipeline/cdc/wal/pgoutput-decode.ts';
import { defaultReplicationNames, identityKey } from '../../src/pipeline/cdc/wal/replication-names.ts';
import { assertSlotName } from '../../src/pipeline/cdc/wal/replication-setup.ts';

describe('pgoutput decoding', () => {
  it('reports a message the protocol does not allow as an internal fault, masked for clients', () => {
    const error = protocolError('COMMIT outside a transaction');
    expect(error).toBeInstanceOf(InternalError);
    expect(error).toMatchObject({ fault: 'WAL_PROTOCOL', message: 'unexpected pgoutput message: COMMIT outside a transaction' });
    expect(isClientFacing(error)).toBe(false);
    const begin = { tag: 'begin', commitLsn: null, commitTime: 0n, xid: 1 } as const;
    expect(() => openTransaction(begin)).toThrow(expect.objectContaining({ fault: 'WAL_PROTOCOL' }));
  });

  it('opens a transaction with an unsigned xid, the padded commit LSN and the commit time', () => {
    const begin = { tag: 'begin', commitLsn: '0/16B3748', commitTime: 1_700_000_000_123_456n, xid: -1 } as const;
    expect(openTransaction(begin)).toEqual({ xid: 0xffff_ffff, commitLsn: '00000000/016B3748', commitTime: new Date(1_700_000_000_123), changes: [], decoded: 0 });
  });
});

describe('replication names', () => {
  it('derives one valid slot and publication name per database identity', () => {
    const one = defaultReplicationNames({ systemIdentifier: '7301234567890123456', database: 'crm' });
    const other = defaultReplicationNames({ systemIdentifier: '7301234567890123456', database: 'shop' });
    expect(one.slotName).toMatch(/^tributary_[0-9a-f]{20}$/);
    expect(one.publicationName).toBe(one.slotName);
    expect(other.slotName).not.toBe(one.slotName);
    expect(defaultReplicationNames({ systemIdentifier: '7301234567890123456', database: 'crm' })).toEqual(one);
    expect(() => assertSlotName(one.slotName)).not.toThrow();
    expect(identityKey({ systemIdentifier: '1', database: 'a/b' })).toBe('1/a/b');
  });

  it('calls an invalid configured name a misconfiguration', () => {
    expect(() => assertSlotName('Has-Caps')).toThrow(expect.objectContaining({ code: ErrorCode.MISCONFIGURED }));
  });
});
