import { describe, expect, it } from 'vitest';
import { ErrorCode, InternalError, isClientFacing } from '../../src/errors.ts';
import type { Pgoutput } from 'pg-logical-replication';
import { addChange, openTransaction, protocolError } from '../../src/pipeline/cdc/wal/pgoutput-decode.ts';
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
    expect(openTransaction(begin)).toEqual({ xid: 0xffff_ffff, commitLsn: '00000000/016B3748', commitTime: new Date(1_700_000_000_123), changes: [], lastLsn: undefined, atLastLsn: 0 });
  });

  it('numbers each change among the changes of its transaction at the same LSN: 0 for a change alone at its LSN, 1, 2… for the further rows of a multi-insert', () => {
    const relation: Pgoutput.MessageRelation = { tag: 'relation', relationOid: 1, schema: 'public', name: 'items', replicaIdentity: 'default', columns: [], keyColumns: ['id'] };
    const insert = (id: number): Pgoutput.MessageInsert => ({ tag: 'insert', relation, new: { id } });
    const transaction = openTransaction({ tag: 'begin', commitLsn: '0/5000', commitTime: 0n, xid: 7 });
    addChange(transaction, insert(1), '00000000/00001000');
    addChange(transaction, insert(2), '00000000/00002000');
    addChange(transaction, insert(3), '00000000/00002000');
    // A chunk is handed on: the count at the LSN goes on in the next one.
    const firstChunk = transaction.changes;
    transaction.changes = [];
    addChange(transaction, insert(4), '00000000/00002000');
    addChange(transaction, insert(5), '00000000/00003000');
    const numbered = (changes: readonly { lsn: string; lsnIndex: number; new: unknown }[]) => changes.map((change) => [change.new, change.lsn, change.lsnIndex]);
    expect(numbered(firstChunk)).toEqual([
      [{ id: 1 }, '00000000/00001000', 0],
      [{ id: 2 }, '00000000/00002000', 0],
      [{ id: 3 }, '00000000/00002000', 1],
    ]);
    expect(numbered(transaction.changes)).toEqual([
      [{ id: 4 }, '00000000/00002000', 2],
      [{ id: 5 }, '00000000/00003000', 0],
    ]);
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
