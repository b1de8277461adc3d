import { createPatch, type Operation } from 'rfc6902';
import { diffAny, type Diff } from 'rfc6902/diff.js';
import type { Pointer } from 'rfc6902/pointer.js';

/**
 * The RFC 6902 patch of a document event's `diff`: applied to the previous data, it gives the new
 * data. Objects are diffed key by key (rfc6902's own walk); arrays by the linear rule of
 * `diffArray`, never by rfc6902's array diff: that one is a minimal edit script by dynamic
 * programming whose memo copies an operation list per cell — time and memory cubic in the array's
 * length (500 numbers: 4 s and 900 MB; 1,000: out of heap), on the event loop, under the document's
 * lock. Here every node of either document is compared a bounded number of times per level of
 * nesting (at most 100 levels: `MAX_VARIABLE_DEPTH`), so the work is linear in the documents' size
 * times their depth. The price: a patch that is correct but not always the shortest (an element
 * moved within an array is a removal and an addition, or a whole-array `replace`). A patch whose
 * paths alone outweigh the new document is one `replace` of the whole document (path '').
 */
/** Paths of a patch that are never weighed against the document (bytes). */
const SHORT_PATHS_BYTES = 4096;

export function documentDiff(before: unknown, after: unknown): Operation[] {
  const patch = createPatch(before, after, diffValue);
  if (patch.length < 2) return patch;
  // Each operation names its whole path: long keys nested deep made a 54 KB document's patch a
  // 30 MB event (every subscriber's frame, the log). Past the document's own size, one replace of
  // the whole document says the same in fewer bytes.
  let pathBytes = 0;
  for (const operation of patch) pathBytes += operation.path.length + ('from' in operation ? operation.from.length : 0);
  // Paths this short cost nothing worth a second serialization of the document on every write.
  if (pathBytes <= SHORT_PATHS_BYTES) return patch;
  return pathBytes > JSON.stringify(after ?? null).length ? [{ op: 'replace', path: '', value: after }] : patch;
}

/** rfc6902's walk, with arrays diffed by `diffArray`; always answers, so rfc6902 never falls back to its own. */
const diffValue: Diff = (input: unknown, output: unknown, ptr: Pointer): Operation[] =>
  Array.isArray(input) && Array.isArray(output) ? diffArray(input, output, ptr) : diffAny(input, output, ptr, diffValue);

/**
 * Two arrays: their common head and tail are left alone; in between, elements are paired by
 * position (each pair diffed in turn), and the longer side's extra elements are removed or added.
 * When that would touch more than one element and more than half of them, one `replace` of the
 * whole array is answered instead (an array rewritten wholesale costs one operation, not one per
 * element).
 */
function diffArray(input: readonly unknown[], output: readonly unknown[], ptr: Pointer): Operation[] {
  const shorter = Math.min(input.length, output.length);
  let head = 0;
  while (head < shorter && sameJson(input[head], output[head])) head += 1;
  if (head === input.length && head === output.length) return [];
  let tail = 0;
  while (tail < shorter - head && sameJson(input[input.length - 1 - tail], output[output.length - 1 - tail])) tail += 1;
  const removed = input.length - head - tail;
  const added = output.length - head - tail;
  const paired = Math.min(removed, added);
  const changed: number[] = [];
  for (let index = head; index < head + paired; index += 1) if (!sameJson(input[index], output[index])) changed.push(index);
  const touched = changed.length + Math.abs(removed - added);
  if (touched > 1 && touched * 2 > Math.max(input.length, output.length)) return [{ op: 'replace', path: ptr.toString(), value: output }];
  const operations: Operation[] = [];
  for (const index of changed) for (const operation of diffValue(input[index], output[index], ptr.add(String(index)))) operations.push(operation);
  // The input's extra elements, last first, so each path names the element's own index.
  for (let index = head + removed - 1; index >= head + paired; index -= 1) operations.push({ op: 'remove', path: ptr.add(String(index)).toString() });
  // The output's extra elements, in order; at the end of the array, '-' (RFC 6902 §4.1).
  for (let index = head + paired; index < head + added; index += 1) {
    const token = tail === 0 ? '-' : String(index);
    operations.push({ op: 'add', path: ptr.add(token).toString(), value: output[index] });
  }
  return operations;
}

/** JSON equality as RFC 6902 §4.6 defines it: arrays by position, objects by key set whatever the order. */
export function sameJson(left: unknown, right: unknown): boolean {
  if (left === right) return true;
  if (typeof left !== 'object' || typeof right !== 'object' || left === null || right === null) return false;
  if (Array.isArray(left) || Array.isArray(right)) {
    if (!Array.isArray(left) || !Array.isArray(right) || left.length !== right.length) return false;
    return left.every((value, index) => sameJson(value, right[index]));
  }
  const leftObject = left as Record<string, unknown>;
  const rightObject = right as Record<string, unknown>;
  const keys = Object.keys(leftObject);
  if (keys.length !== Object.keys(rightObject).length) return false;
  return keys.every((key) => Object.hasOwn(rightObject, key) && sameJson(leftObject[key], rightObject[key]));
}
