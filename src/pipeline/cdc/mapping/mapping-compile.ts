/**
 * The mapping language's compiler and its limits. One walk validates a mapping's `when`, `topic`
 * and `payload` (reporting each problem with its path from the mapping's root) and builds what
 * the evaluator runs, so validation and evaluation cannot disagree. `parseMapping` runs the same
 * walk inside its zod schema; `evaluateMapping` and `checkMappingAgainstTable` use
 * {@link compiled}. The language itself is described in `mapping.ts`.
 *
 * The limits and `Literal` live here rather than in `mapping.ts` because the compiler enforces
 * them and `mapping.ts` imports the compiler (the dependency rule forbids import cycles).
 */
import type { z } from 'zod';
import { ErrorCode, isTributaryError, TributaryError } from '../../../errors.ts';
import { assertName } from '../../names.ts';
import { isJsonObject } from '../../events/json.ts';

export type Literal = string | number | boolean | null;

export const MAX_CONDITION_DEPTH = 8;
export const MAX_CONDITION_NODES = 64;
const MAX_IN_VALUES = 100;
export const MAX_PAYLOAD_DEPTH = 8;
const MAX_PAYLOAD_NODES = 200;
export const MAX_TOPIC_PLACEHOLDERS = 8;
const MAX_LITERAL_LENGTH = 1000;

export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
export const IDENTIFIER_TEXT = 'a Postgres identifier: 1–63 letters, digits, _ or $, not starting with a digit';
const REFERENCE = /^\$(row|old)\.(.*)$/;
const PAYLOAD_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/;
const OPERATORS_TEXT = 'changed, eq, in, and, or, not';

export type Path = readonly (string | number)[];

export interface Ref {
  readonly source: 'row' | 'old';
  readonly column: string;
}

/** Where a mapping reads a column; `checkMappingAgainstTable` reasons over these. */
export interface ColumnUse {
  readonly column: string;
  readonly source: 'row' | 'old' | 'changed';
  readonly in: 'when' | 'topic' | 'payload';
  readonly path: string;
}

export interface CompileContext {
  readonly report: (path: Path, message: string) => void;
  readonly uses: ColumnUse[];
  /** Operators or payload values seen so far, against the size limits. */
  nodes: number;
}

export type CompiledOperand = { readonly ref: Ref } | { readonly literal: Literal };

export type CompiledCondition =
  | { readonly op: 'changed'; readonly column: string }
  | { readonly op: 'eq'; readonly left: CompiledOperand; readonly right: CompiledOperand }
  | { readonly op: 'in'; readonly operand: CompiledOperand; readonly values: readonly Literal[] }
  | { readonly op: 'and' | 'or'; readonly children: readonly CompiledCondition[] }
  | { readonly op: 'not'; readonly child: CompiledCondition };

export type CompiledPayload =
  | CompiledOperand
  | { readonly list: readonly CompiledPayload[] }
  | { readonly entries: readonly (readonly [string, CompiledPayload])[] };

export interface CompiledMapping {
  readonly when: CompiledCondition | undefined;
  readonly topic: readonly (string | Ref)[];
  readonly payload: CompiledPayload | undefined;
  readonly uses: readonly ColumnUse[];
}

/** The fields of a mapping the compiler reads; a `DomainMapping` is one. */
export interface MappingSource {
  readonly name: string;
  readonly when?: unknown;
  readonly topic: string;
  readonly payload?: unknown;
}

/** Compiled once per mapping object; a changed mapping is a new object (apply without restart). */
const cache = new WeakMap<MappingSource, CompiledMapping>();

/** The mapping's compiled form; throws BAD_USER_INPUT for a hand-built invalid mapping. */
export function compiled(mapping: MappingSource): CompiledMapping {
  const hit = cache.get(mapping);
  if (hit !== undefined) return hit;
  const problems: string[] = [];
  let firstPath = '';
  const uses: ColumnUse[] = [];
  const context = (): CompileContext => ({
    report: (path, message) => {
      if (problems.length === 0) firstPath = formatPath(path);
      problems.push(`${formatPath(path)}: ${message}`);
    },
    uses,
    nodes: 0,
  });
  const when = mapping.when === undefined ? undefined : compileCondition(mapping.when, ['when'], context(), 1);
  const topic = compileTopic(mapping.topic, context());
  const payload = mapping.payload === undefined ? undefined : compilePayloadRoot(mapping.payload, context());
  if (problems.length > 0 || topic === undefined) {
    // Only a hand-built mapping gets here: parseMapping reports the same problems first.
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `Invalid mapping ${mapping.name}: ${problems.join('; ')}`, {
      details: { field: 'mapping', path: firstPath },
    });
  }
  const result: CompiledMapping = { when, topic, payload, uses };
  cache.set(mapping, result);
  return result;
}

/** Adapts a zod refinement context; zod already prefixes the field's own name to the path. */
export function contextOf(ctx: z.RefinementCtx): CompileContext {
  return {
    report: (path, message) => ctx.addIssue({ code: 'custom', message, path: path.slice(1) }),
    uses: [],
    nodes: 0,
  };
}

/** `when.and[1].eq[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : `${text === '' ? '' : '.'}${String(part)}`;
  return text;
}

export function isValidName(kind: 'topic' | 'type', name: string): boolean {
  try {
    assertName(kind, name);
    return true;
  } catch (error) {
    if (isTributaryError(error)) return false;
    throw error;
  }
}

function fail(ctx: CompileContext, path: Path, message: string): undefined {
  ctx.report(path, message);
  return undefined;
}

export function compileCondition(
  node: unknown,
  path: Path,
  ctx: CompileContext,
  depth: number,
): CompiledCondition | undefined {
  if (depth > MAX_CONDITION_DEPTH) return fail(ctx, path, `conditions nest at most ${MAX_CONDITION_DEPTH} levels deep`);
  ctx.nodes += 1;
  if (ctx.nodes > MAX_CONDITION_NODES) return fail(ctx, path, `a condition has at most ${MAX_CONDITION_NODES} operators`);
  if (!isJsonObject(node)) return fail(ctx, path, `expected a condition object with one of ${OPERATORS_TEXT}`);
  const keys = Object.keys(node);
  const op = keys[0];
  if (op === undefined) return fail(ctx, path, `an empty condition; use one of ${OPERATORS_TEXT}`);
  if (keys.length > 1) {
    return fail(ctx, path, `one operator per condition (got ${keys.join(', ')}); combine them with "and"`);
  }
  const arg = node[op];
  const at = [...path, op];
  switch (op) {
    case 'changed':
      if (typeof arg !== 'string' || !IDENTIFIER.test(arg)) {
        return fail(ctx, at, `expected a column name, ${IDENTIFIER_TEXT}`);
      }
      ctx.uses.push({ column: arg, source: 'changed', in: 'when', path: formatPath(at) });
      return { op, column: arg };
    case 'eq': {
      if (!Array.isArray(arg) || arg.length !== 2) return fail(ctx, at, 'expected [operand, operand]');
      const left = compileOperand(arg[0], [...at, 0], 'when', ctx);
      const right = compileOperand(arg[1], [...at, 1], 'when', ctx);
      return left === undefined || right === undefined ? undefined : { op, left, right };
    }
    case 'in': {
      if (!Array.isArray(arg) || arg.length !== 2 || !Array.isArray(arg[1])) {
        return fail(ctx, at, 'expected [operand, [value, …]]');
      }
      const operand = compileOperand(arg[0], [...at, 0], 'when', ctx);
      const values: unknown[] = arg[1];
      if (values.length === 0 || values.length > MAX_IN_VALUES) {
        return fail(ctx, [...at, 1], `expected 1–${MAX_IN_VALUES} values (got ${values.length})`);
      }
      const bad = values.findIndex((value) => !isLiteral(value));
      if (bad >= 0) return fail(ctx, [...at, 1, bad], literalProblem(values[bad], 'a string, number, boolean or null'));
      return operand === undefined ? undefined : { op, operand, values: values as Literal[] };
    }
    case 'and':
    case 'or': {
      if (!Array.isArray(arg) || arg.length === 0) return fail(ctx, at, 'expected a non-empty list of conditions');
      const children: CompiledCondition[] = [];
      for (let i = 0; i < arg.length && ctx.nodes <= MAX_CONDITION_NODES; i++) {
        const child = compileCondition(arg[i], [...at, i], ctx, depth + 1);
        if (child !== undefined) children.push(child);
      }
      return children.length === arg.length ? { op, children } : undefined;
    }
    case 'not': {
      const child = compileCondition(arg, at, ctx, depth + 1);
      return child === undefined ? undefined : { op, child };
    }
    default:
      return fail(ctx, path, `unknown operator ${JSON.stringify(op.slice(0, 40))}; use one of ${OPERATORS_TEXT}`);
  }
}

function compileOperand(
  value: unknown,
  path: Path,
  where: ColumnUse['in'],
  ctx: CompileContext,
): CompiledOperand | undefined {
  if (typeof value === 'string' && value.startsWith('$')) {
    if (value.startsWith('$$')) {
      const literal = value.slice(1);
      return isLiteral(literal) ? { literal } : fail(ctx, path, literalProblem(literal));
    }
    const ref = parseRef(value);
    if (ref === undefined) {
      const text = JSON.stringify(value.slice(0, 60));
      return fail(ctx, path, `${text} is not a reference: use $row.<column> or $old.<column> ($$: a literal $)`);
    }
    ctx.uses.push({ ...ref, in: where, path: formatPath(path) });
    return { ref };
  }
  return isLiteral(value) ? { literal: value } : fail(ctx, path, literalProblem(value));
}

function parseRef(text: string): Ref | undefined {
  const match = REFERENCE.exec(text);
  const column = match?.[2];
  if (match === null || column === undefined || !IDENTIFIER.test(column)) return undefined;
  return { source: match[1] === 'old' ? 'old' : 'row', column };
}

function isLiteral(value: unknown): value is Literal {
  if (typeof value === 'string') return value.length <= MAX_LITERAL_LENGTH;
  return value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

function literalProblem(value: unknown, expected = 'a reference, or a string, number, boolean or null'): string {
  if (typeof value === 'string') return `a string has at most ${MAX_LITERAL_LENGTH} characters`;
  return `expected ${expected}`;
}

export function compileTopic(topic: string, ctx: CompileContext): (string | Ref)[] | undefined {
  const path = ['topic'];
  if (topic.length > 400) return fail(ctx, path, 'a topic template has at most 400 characters');
  const parts: (string | Ref)[] = [];
  // Each placeholder counts as one letter when the template's fixed text is checked.
  let sample = '';
  for (let i = 0; i < topic.length; ) {
    const open = topic.indexOf('{', i);
    const stray = topic.indexOf('}', i);
    if (stray >= 0 && (open < 0 || stray < open)) return fail(ctx, path, '"}" without a matching "{"');
    const text = topic.slice(i, open < 0 ? topic.length : open);
    if (text !== '') parts.push(text);
    sample += text;
    if (open < 0) break;
    const close = topic.indexOf('}', open);
    if (close < 0) return fail(ctx, path, 'a "{" without its closing "}"');
    const inner = topic.slice(open + 1, close);
    const ref = parseRef(inner);
    if (ref === undefined) {
      return fail(ctx, path, `placeholder {${inner.slice(0, 60)}} must be {$row.<column>} or {$old.<column>}`);
    }
    ctx.uses.push({ ...ref, in: 'topic', path: 'topic' });
    parts.push(ref);
    sample += 'x';
    i = close + 1;
  }
  const placeholders = parts.filter((part) => typeof part !== 'string').length;
  if (placeholders > MAX_TOPIC_PLACEHOLDERS) {
    return fail(ctx, path, `a topic has at most ${MAX_TOPIC_PLACEHOLDERS} placeholders`);
  }
  if (!isValidName('topic', sample)) {
    const rule = 'use 1–200 letters, digits and _ . : / -, starting with a letter or digit';
    return fail(ctx, path, `not a valid topic: ${rule}, and {$row.<column>} placeholders`);
  }
  return parts;
}

export function compilePayloadRoot(payload: unknown, ctx: CompileContext): CompiledPayload | undefined {
  if (!isJsonObject(payload)) return fail(ctx, ['payload'], 'expected an object (or leave payload out to send the full row)');
  return compilePayload(payload, ['payload'], ctx, 1);
}

function compilePayload(value: unknown, path: Path, ctx: CompileContext, depth: number): CompiledPayload | undefined {
  ctx.nodes += 1;
  if (ctx.nodes > MAX_PAYLOAD_NODES) return fail(ctx, path, `a payload has at most ${MAX_PAYLOAD_NODES} values`);
  const nested = Array.isArray(value) || isJsonObject(value);
  if (nested && depth > MAX_PAYLOAD_DEPTH) {
    return fail(ctx, path, `a payload nests at most ${MAX_PAYLOAD_DEPTH} levels deep`);
  }
  if (Array.isArray(value)) {
    const list: CompiledPayload[] = [];
    for (let i = 0; i < value.length && ctx.nodes <= MAX_PAYLOAD_NODES; i++) {
      const item = compilePayload(value[i], [...path, i], ctx, depth + 1);
      if (item !== undefined) list.push(item);
    }
    return list.length === value.length ? { list } : undefined;
  }
  if (isJsonObject(value)) {
    const keys = Object.keys(value);
    const entries: [string, CompiledPayload][] = [];
    for (let i = 0; i < keys.length && ctx.nodes <= MAX_PAYLOAD_NODES; i++) {
      const key = keys[i] as string;
      if (!PAYLOAD_KEY.test(key) || key === '__proto__') {
        const text = JSON.stringify(key.slice(0, 60));
        fail(ctx, path, `key ${text}: use 1–100 letters, digits, _ or -, starting with a letter or _`);
        continue;
      }
      const entry = compilePayload(value[key], [...path, key], ctx, depth + 1);
      if (entry !== undefined) entries.push([key, entry]);
    }
    return entries.length === keys.length ? { entries } : undefined;
  }
  return compileOperand(value, path, 'payload', ctx);
}
