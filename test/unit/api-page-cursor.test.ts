import { describe, expect, it } from 'vitest';
import { decodePageCursor, encodePageCursor } from '../../src/pipeline/cdc/model-snapshot-cursor.ts';

const invalidAfter: unknown = expect.objectContaining({ code: 'BAD_USER_INPUT', details: { field: 'after' } });

describe('records page cursors', () => {
  it('refuse a forged page cursor whose embedded snapshot this server did not make as BAD_USER_INPUT on `after`, not RESYNC_REQUIRED', () => {
    expect(() => decodePageCursor(encodePageCursor({ model: 'contacts', key: ['1'], snapshot: 'not-a-snapshot' }))).toThrow(invalidAfter);
    expect(() => decodePageCursor(encodePageCursor({ model: 'contacts', key: ['1'], snapshot: 's1.bm9wZQ' }))).toThrow(invalidAfter);
    // As a page cursor that is garbage as a whole is.
    expect(() => decodePageCursor('p1.garbage')).toThrow(invalidAfter);
  });
});
