import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { JSONResolver } from 'graphql-scalars';
import { ErrorCode } from '../errors.ts';

/**
 * The `JSON` scalar: graphql-scalars' `JSONResolver` (its serialize, description and
 * `@specifiedBy`), with input parsing that refuses what JSON cannot carry instead of turning it
 * into `undefined` or `null`. graphql-scalars maps an enum value (`status: ACTIVE`, a bare word
 * meant as a string) and a variable the request left out to `undefined`, which every later step —
 * a merge patch, a stored document, a JSON Patch diff — reads as "delete this key" or drops; and
 * `1e400` becomes Infinity, stored as `null`.
 *
 * Refusals name the place in the value as a JSON Pointer. A literal's comes while graphql-js
 * validates the document, before anything runs — except a variable the request left out, which
 * only shows when the operation runs with its variables: graphql-js then swallows the reason and
 * answers `Argument "x" has invalid value …` at the field. A variable's comes while the request's
 * variables are coerced.
 */
export const JsonScalar = new GraphQLScalarType<unknown, unknown>({
  ...JSONResolver.toConfig(),
  parseValue: parseJsonValue,
  parseLiteral: (ast, variables) => parseJsonLiteral(ast, variables, ''),
});

/**
 * A literal in the document. `variables` is undefined while graphql-js validates the document
 * (ValuesOfCorrectTypeRule asks without them): a variable inside the literal is then accepted as
 * it stands, and checked when the operation runs with its variables.
 */
function parseJsonLiteral(ast: ValueNode, variables: Readonly<Record<string, unknown>> | null | undefined, at: string): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.NULL:
      return null;
    case Kind.INT: {
      const value = Number(ast.value);
      // JavaScript numbers hold integers exactly up to 2^53 - 1: past it the literal would be
      // rounded silently (12345678901234567890 stored as 12345678901234567000).
      if (!Number.isSafeInteger(value)) {
        throw literalRefusal(`The integer ${ast.value}${where(at)} is beyond ±${Number.MAX_SAFE_INTEGER} and cannot be kept exactly: send it as a string`, ast);
      }
      return value;
    }
    case Kind.FLOAT: {
      const value = Number(ast.value);
      if (!Number.isFinite(value)) throw literalRefusal(`The number ${ast.value}${where(at)} is too large for JSON (at most about 1.8e308)`, ast);
      return value;
    }
    case Kind.LIST:
      return ast.values.map((item, index) => parseJsonLiteral(item, variables, `${at}/${index}`));
    case Kind.OBJECT: {
      // No prototype: a `__proto__` field stays a key instead of replacing the object's prototype.
      const object = Object.create(null) as Record<string, unknown>;
      for (const field of ast.fields) object[field.name.value] = parseJsonLiteral(field.value, variables, `${at}/${pointerSegment(field.name.value)}`);
      return object;
    }
    case Kind.ENUM:
      throw literalRefusal(`An enum value \`${ast.value}\`${where(at)} is not JSON: quote it as a string ("${ast.value}")`, ast);
    case Kind.VARIABLE: {
      if (variables === undefined || variables === null) return null;
      const name = ast.name.value;
      // graphql-js leaves a variable the request did not send out of `variables`; one sent as null is there.
      if (!Object.hasOwn(variables, name)) {
        throw literalRefusal(`Variable \`$${name}\`${where(at)} was not provided: a JSON value cannot leave it out (send it, or null)`, ast);
      }
      return variables[name];
    }
  }
}

/**
 * A variable's value, as the transport parsed it from JSON. JSON.parse turns a number too large
 * for a double (`1e400`) into Infinity; a caller inside the process could hand over `undefined`,
 * NaN or a value JSON has no form for. An integer past 2^53 - 1 was already rounded by JSON.parse,
 * before it gets here: nothing tells it from the rounded one. Checked with an explicit stack: the
 * depth is the client's.
 */
function parseJsonValue(value: unknown): unknown {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (isJsonLeaf(current)) continue;
    if (Array.isArray(current)) for (const item of current as unknown[]) stack.push(item);
    else if (typeof current === 'object' && current !== null) for (const key of Object.keys(current)) stack.push((current as Record<string, unknown>)[key]);
    else throw new GraphQLError(describeUnfit(value));
  }
  return value;
}

/** Whether `value` is a leaf JSON can carry: null, a boolean, a string or a finite number. */
function isJsonLeaf(value: unknown): boolean {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** The message for a value found unfit by `parseJsonValue`: a second walk, with paths, only on refusal. */
function describeUnfit(value: unknown): string {
  const stack: [unknown, string][] = [[value, '']];
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    const [current, at] = entry;
    if (isJsonLeaf(current)) continue;
    if (Array.isArray(current)) (current as unknown[]).forEach((item, index) => stack.push([item, `${at}/${index}`]));
    else if (typeof current === 'object' && current !== null) {
      for (const key of Object.keys(current)) stack.push([(current as Record<string, unknown>)[key], `${at}/${pointerSegment(key)}`]);
    } else if (typeof current === 'number') return `The number ${String(current)}${where(at)} is not one JSON can carry (too large for a double, or not a number)`;
    else return `A value of type ${typeof current}${where(at)} is not JSON`;
  }
  return 'The value is not JSON';
}

/**
 * A literal's refusal carries its code: graphql-js's validation reports a GraphQLError as it is
 * (yoga would call it GRAPHQL_VALIDATION_FAILED), and the masker keeps a code it finds. A
 * variable's refusal carries none: graphql-js wraps it in "Variable "$x" got invalid value …",
 * which names the variable, and the masker makes that BAD_USER_INPUT as it stands.
 */
function literalRefusal(message: string, node: ValueNode): GraphQLError {
  return new GraphQLError(message, { nodes: node, extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } });
}

/** ` at /a/0`, or nothing at the top of the value. */
function where(at: string): string {
  return at === '' ? '' : ` at ${at}`;
}

/** A key as a JSON Pointer segment (RFC 6901). */
function pointerSegment(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}
