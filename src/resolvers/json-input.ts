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

// The check lives with the pipeline's name rules: an outbox row's tenant and entity get the same one.
export { hasControlCharacter } from '../pipeline/names.ts';

/**
 * Refuses — BAD_USER_INPUT naming `field` — a string headed for a `text` column that holds a NUL
 * character (U+0000). GraphQL and JSON strings may carry one; Postgres refuses it (SQLSTATE
 * 22021), which would surface as an internal error after every other check had passed.
 */
export function assertStorableText(field: string, value: string): void {
  if (!value.includes('\u0000')) return;
  throw new TributaryError(ErrorCode.BAD_USER_INPUT, `${field} must not contain the NUL character (U+0000)`, { details: { field } });
}

/**
 * Refuses — BAD_USER_INPUT naming `field`, `details.path` a JSON Pointer to the culprit — a value
 * headed for a `jsonb` column with a key or string, anywhere inside, that jsonb cannot hold
 * though JSON and GraphQL carry it: a NUL character (jsonb refuses "\u0000", SQLSTATE 22P05) or
 * half of a surrogate pair (JSON.stringify writes it as "\udXXX", which jsonb refuses as invalid
 * input). Such a value passes every other check and fails only when written — behind the document
 * cache, after the change was acknowledged. Also refused: a value JSON has no form for —
 * `undefined`, a number that is not finite — which would be written as a silent deletion (a merge
 * patch's absent key, JSON.stringify dropping it) or `null`; the `JSON` scalar refuses them at the
 * edge, this is the backstop for any other way in. An explicit stack, not recursion: the depth is
 * the client's.
 */
export function assertStorableJson(field: string, value: unknown): void {
  const stack: JsonNode[] = [{ value, parent: undefined, key: '' }];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const current = node.value;
    if (typeof current === 'string') {
      if (!isStorable(current)) throw unstorable(field, 'a string', node);
    } else if (current === undefined || (typeof current === 'number' && !Number.isFinite(current))) {
      throw notJson(field, current, node);
    } else if (Array.isArray(current)) {
      for (let index = current.length - 1; index >= 0; index -= 1) stack.push({ value: current[index] as unknown, parent: node, key: index });
    } else if (typeof current === 'object' && current !== null) {
      for (const [key, member] of Object.entries(current)) {
        const child: JsonNode = { value: member, parent: node, key };
        if (!isStorable(key)) throw unstorable(field, 'a key', child);
        stack.push(child);
      }
    }
  }
}

interface JsonNode {
  readonly value: unknown;
  readonly parent: JsonNode | undefined;
  readonly key: string | number;
}

function isStorable(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed();
}

/** Pointer segments, and pointers, longer than these are cut: the client has the value, the answer only has to point into it. */
const MAX_SEGMENT = 40;
const MAX_POINTER = 200;

function unstorable(field: string, what: string, node: JsonNode): TributaryError {
  const path = pathOf(node);
  return new TributaryError(
    ErrorCode.BAD_USER_INPUT,
    `${field} has ${what} with a NUL character (U+0000) or half of a surrogate pair at ${placeOf(path)}; the database cannot store it`,
    { details: { field, path } },
  );
}

function notJson(field: string, value: undefined | number, node: JsonNode): TributaryError {
  const path = pathOf(node);
  const what = value === undefined ? 'no value (undefined)' : `the number ${String(value)}`;
  return new TributaryError(ErrorCode.BAD_USER_INPUT, `${field} has ${what} at ${placeOf(path)}, which JSON cannot carry`, { details: { field, path } });
}

/** The JSON Pointer of `node` in the value, cut to MAX_POINTER characters. */
function pathOf(node: JsonNode): string {
  const segments: string[] = [];
  for (let at: JsonNode | undefined = node; at?.parent !== undefined; at = at.parent) segments.push(segmentOf(at.key));
  const pointer = segments.reverse().map((segment) => `/${segment}`).join('');
  return pointer.length > MAX_POINTER ? `${pointer.slice(0, MAX_POINTER)}…` : pointer;
}

function placeOf(path: string): string {
  return path === '' ? 'its top level' : path;
}

/** RFC 6901 escaping, characters that cannot be stored written as \uXXXX, long keys cut. */
function segmentOf(key: string | number): string {
  const text = String(key);
  const cut = text.length > MAX_SEGMENT ? `${text.slice(0, MAX_SEGMENT)}…` : text;
  return cut
    .replaceAll('~', '~0')
    .replaceAll('/', '~1')
    .replaceAll('\u0000', '\\u0000')
    // A surrogate code point in Unicode mode is one without its pair.
    .replace(/\p{Cs}/gu, (unit) => `\\u${unit.charCodeAt(0).toString(16)}`);
}
