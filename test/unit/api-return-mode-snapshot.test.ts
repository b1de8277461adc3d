import { describe, expect, it } from 'vitest';
import { applyReturnMode } from '../../src/pipeline/dispatch/return-mode.ts';
import { documentSnapshot } from '../../src/pipeline/events/document-change.ts';

const SCOPE = { app: 'a', env: 'e', tenant: 't' };

function snapshot(revision: number, data?: Record<string, unknown>) {
  return documentSnapshot({ scope: SCOPE, topic: 'sync.board.doc.b1', cursor: 'c', payload: { service: 'board', documentId: 'b1', revision, ...(data && { data }) } });
}

describe('returnMode on a document snapshot', () => {
  it('DIFF keeps the snapshot’s data: it is the base the diffs that follow apply to', () => {
    const event = snapshot(3, { n: 2 });
    expect(applyReturnMode(event, 'DIFF').payload).toEqual({ service: 'board', documentId: 'b1', revision: 3, data: { n: 2 } });
    expect(applyReturnMode(event, 'DATA').payload).toEqual({ service: 'board', documentId: 'b1', revision: 3, data: { n: 2 } });
  });

  it('MINIMAL strips it like any change: notify only', () => {
    expect(applyReturnMode(snapshot(3, { n: 2 }), 'MINIMAL').payload).toEqual({ service: 'board', documentId: 'b1', revision: 3 });
  });
});
