import { ErrorCode, TributaryError } from '../errors.ts';

/**
 * The JSON text of a value a client hands over for others to read (a `publish` payload, a
 * `broadcast`'s data), refused here — BAD_USER_INPUT naming `field` — rather than by every reader
 * later: over `maxBytes` of JSON, or nested too deeply to serialize at all (JSON.stringify
 * throws a RangeError; the edge's variable limit keeps such values out, this is the backstop).
 */
export function jsonWithin(field: string, value: unknown, maxBytes: number): string {
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `${field} nests too deeply to be sent as JSON`, { details: { field } });
  }
  const size = Buffer.byteLength(json);
  if (size > maxBytes) {
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `${field} is ${size} bytes of JSON; the limit is ${maxBytes}`, { details: { field } });
  }
  return json;
}
