import type { JsonObject } from './documents.ts';

/**
 * JSON Merge Patch, RFC 7396 §2 (which obsoletes RFC 7386): the `MergePatch(Target, Patch)`
 * pseudocode, where no member name has a meaning of its own. A document may hold `__proto__`,
 * `constructor`, `prototype` or `hasOwnProperty` like any other key, so members are listed with
 * `Object.keys`, looked up with `Object.hasOwn` and set with `Object.defineProperty` — a plain
 * assignment to `__proto__` would change the object's prototype instead of adding a member.
 * (json-merge-patch 1.0.2 stops the whole merge at such a name and calls `target.hasOwnProperty`.)
 *
 * Neither argument is modified; members the patch does not touch are shared with `target`.
 */
export function applyMergePatch(target: unknown, patch: JsonObject): JsonObject;
export function applyMergePatch(target: unknown, patch: unknown): unknown;
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  // Spread copies own members as data properties, `__proto__` included.
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const name of Object.keys(patch)) {
    const value = patch[name];
    if (value === null) {
      // `delete` only ever removes an own member.
      delete result[name];
    } else {
      const current = Object.hasOwn(result, name) ? result[name] : undefined;
      Object.defineProperty(result, name, { value: applyMergePatch(current, value), enumerable: true, writable: true, configurable: true });
    }
  }
  return result;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
