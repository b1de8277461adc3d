import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ErrorCode, InternalError, TributaryError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { createErrorMasker } from '../../src/schema/errors.ts';
import { captureLogs } from '../helpers/tributary.ts';

/** A resolver's error as graphql-js hands it to the masker: located at a field. */
function located(original: Error): GraphQLError {
  return new GraphQLError(original.message, { path: ['createDocument'], originalError: original });
}

describe('the error masker', () => {
  it.each([
    ['an InternalError', new InternalError('WAL_PROTOCOL', 'unexpected pgoutput message: secret detail')],
    ['a TributaryError coded INTERNAL_SERVER_ERROR', new TributaryError(ErrorCode.INTERNAL_SERVER_ERROR, 'LSN secret detail is outside 0 … 2^64-1')],
    ['a plain Error', new Error('relation "secret detail" does not exist')],
  ])('masks %s and logs it with its cause', (_name, error) => {
    const logs = captureLogs();
    const masked = createErrorMasker(createLogger({ level: 'debug', destination: logs }))(located(error), 'Unexpected error.') as GraphQLError;
    expect(masked.message).toBe('Unexpected error.');
    expect(masked.extensions).toEqual({ code: ErrorCode.INTERNAL_SERVER_ERROR });
    expect(JSON.stringify(masked.toJSON())).not.toContain('secret detail');
    expect(logs.lines).toHaveLength(1);
    expect(logs.lines[0]).toMatchObject({ level: 50, msg: 'internal error', err: { message: error.message } });
  });

  it('names the fault of an InternalError in the log', () => {
    const logs = captureLogs();
    createErrorMasker(createLogger({ destination: logs }))(located(new InternalError('WAL_PROTOCOL', 'x')), 'Unexpected error.');
    expect(logs.lines[0]).toMatchObject({ fault: 'WAL_PROTOCOL' });
  });

  it('shows a client-facing error with its code and details', () => {
    const masked = createErrorMasker(createLogger({ level: 'silent' }))(
      located(new TributaryError(ErrorCode.CONFLICT, 'Revision conflict', { details: { currentRevision: 3 } })),
      'Unexpected error.',
    ) as GraphQLError;
    expect(masked.message).toBe('Revision conflict');
    expect(masked.extensions).toEqual({ code: ErrorCode.CONFLICT, currentRevision: 3 });
    expect(masked.path).toEqual(['createDocument']);
  });
});
