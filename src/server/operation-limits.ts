import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import type { Plugin } from 'graphql-yoga';
import {
  BREAK,
  GraphQLError,
  Kind,
  parse,
  visit,
  type DocumentNode,
  type ParseOptions,
  type Source,
  type ValidationContext,
  type ValidationRule,
  type ValueNode,
} from 'graphql';
import type { Limits } from '../config.ts';
import { ErrorCode } from '../errors.ts';
import { fieldRepeatedTooOften } from './field-repeats.ts';
import { compactDocument } from './parse-cache.ts';

export type OperationLimits = Pick<Limits, 'maxDepth' | 'maxAliases' | 'maxTokens'>;

/**
 * Deepest nesting of objects and arrays in one variable's value: far above what the schema's
 * inputs need (filters and mappings have limits of their own, a few dozen levels at most), far
 * below the thousands at which graphql-js's recursive coercion or `JSON.stringify` overflow the
 * stack — a 1 MiB request can nest 500,000 levels, and would be answered as a server fault.
 */
export const MAX_VARIABLE_DEPTH = 100;

/** The message for a document nested past what graphql-js's recursive parser can hold. */
const NESTED_TOO_DEEPLY_TO_PARSE = 'Operation nested too deeply to parse';

/**
 * Depth, alias and token limits, and the nesting of variables, as one envelop plugin. It runs
 * wherever the envelope runs — yoga's HTTP handler and the WebSocket executor alike — so no
 * transport bypasses it (the WebSocket executor makes a subscription's source itself, and calls
 * `variablesTooDeep` for it). A rejected operation gets `extensions.code = QUERY_TOO_COMPLEX`;
 * any other syntax error GRAPHQL_PARSE_FAILED; variables, and literals in the document, nested
 * too deeply BAD_USER_INPUT; a field selected too often in one selection set (field-repeats.ts)
 * QUERY_TOO_COMPLEX.
 */
export function useOperationLimits(limits: OperationLimits): Plugin {
  // armor's rules throw by default, which yoga would mask as an internal error; report instead.
  const reject = {
    propagateOnRejection: false,
    exposeLimits: true,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) =>
        context?.reportError(
          new GraphQLError(error.message.replace(/^Syntax Error: /, ''), {
            nodes: error.nodes,
            extensions: { code: ErrorCode.QUERY_TOO_COMPLEX },
          }),
        ),
    ],
  };
  const rules: ValidationRule[] = [
    maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, flattenFragments: true, ...reject }),
    maxAliasesRule({ n: limits.maxAliases, ...reject }),
  ];
  return {
    onParse({ setParseFn }) {
      // graphql-js counts tokens while lexing and stops at the limit: a huge document costs no more.
      // Parse errors get their code and HTTP status here, before yoga caches the parse result
      // by document text: the cached error is then right for whichever transport sees it next.
      // The document is kept compact (without its tokens): the cache keeps it, and so does every
      // subscription cohort that executes it, for as long as it lives.
      setParseFn((source: string | Source, options?: ParseOptions) => {
        try {
          return compactDocument(parse(source, { ...options, maxTokens: limits.maxTokens }));
        } catch (error) {
          // The parser recurses once per level of nesting and lexes lazily: about 2,000 nested
          // `[` overflow the stack before the token limit is reached. The overflow is the
          // caller's document, not a fault of the server, and V8's words are not for clients.
          if (error instanceof RangeError) {
            throw new GraphQLError(NESTED_TOO_DEEPLY_TO_PARSE, { extensions: { code: ErrorCode.QUERY_TOO_COMPLEX, http: { status: 400 } } });
          }
          if (!(error instanceof GraphQLError)) throw error;
          // graphql-js 16 words it "Document contains more that N tokens" (sic).
          const tooLarge = /Document contains more th\w+ \d+ tokens/.test(error.message);
          throw new GraphQLError(tooLarge ? `Operation too large: more than ${limits.maxTokens} tokens` : error.message, {
            ...(!tooLarge && { source: error.source, positions: error.positions }),
            extensions: {
              code: tooLarge ? ErrorCode.QUERY_TOO_COMPLEX : ErrorCode.GRAPHQL_PARSE_FAILED,
              http: { status: 400 },
            },
          });
        }
      });
    },
    onValidate({ params, addValidationRule, setResult }) {
      // Checked before graphql-js's own rules, which are not run on a refused document: they
      // recurse once per level of a literal too, and compare a field's repeats pairwise.
      // (envelop types the document loosely.)
      const document = params.documentAST as DocumentNode;
      const refused = literalsTooDeep(document) ?? fieldRepeatedTooOften(document);
      if (refused) setResult([refused]);
      else for (const rule of rules) addValidationRule(rule);
    },
    onExecute({ args, setResultAndStopExecution }) {
      const refused = variablesTooDeep(args.variableValues);
      if (refused) setResultAndStopExecution({ errors: [refused] });
    },
  };
}

// Not `Object.hasOwn`: V8 answers `hasOwnProperty` inside `for…in` from the enumeration cache,
// several times faster on a 66 KB payload.
// eslint-disable-next-line @typescript-eslint/unbound-method -- always called with `.call`
const { hasOwnProperty } = Object.prototype;

/**
 * The error for a variable nested deeper than MAX_VARIABLE_DEPTH, or undefined when none is.
 * Depth counts objects and arrays from the variable's value itself: for `$input: { payload: <…> }`
 * the object that is `input` is level 1 and `payload`'s value level 2; scalars add no level.
 * It runs on every operation (the publish path included), so it allocates nothing per value.
 */
export function variablesTooDeep(variables: unknown): GraphQLError | undefined {
  if (typeof variables !== 'object' || variables === null) return undefined;
  for (const name in variables) {
    if (!hasOwnProperty.call(variables, name)) continue;
    const value: unknown = (variables as Record<string, unknown>)[name];
    if (typeof value !== 'object' || value === null || !nestsDeeperThanMax(value, 1)) continue;
    return new GraphQLError(`Variable "$${name}" nests objects and arrays more than ${MAX_VARIABLE_DEPTH} levels deep`, {
      extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } },
    });
  }
  return undefined;
}

/** Documents already looked at by `literalsTooDeep`, with their refusal (null when none). */
const literalsChecked = new WeakMap<DocumentNode, GraphQLError | null>();

/**
 * The error for an argument or a variable's default value written in the document nested deeper
 * than MAX_VARIABLE_DEPTH, or undefined when none is; counted as for variables. An inline literal
 * is coerced by the same recursive code as a variable's value, so it gets the same limit. Looked
 * at once per document (yoga caches parsed documents by text), not once per request.
 */
function literalsTooDeep(document: DocumentNode): GraphQLError | undefined {
  const known = literalsChecked.get(document);
  if (known !== undefined) return known ?? undefined;
  let refused: GraphQLError | null = null;
  const check = (value: ValueNode | undefined, what: string) => {
    if (value === undefined || !valueNestsDeeperThanMax(value, 1)) return undefined;
    refused = new GraphQLError(`${what} nests objects and arrays more than ${MAX_VARIABLE_DEPTH} levels deep`, {
      nodes: value,
      extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } },
    });
    return BREAK;
  };
  // graphql-js's `visit` keeps its own stack, so a deep literal does not overflow it.
  visit(document, {
    // The value was just checked: its nodes need no visit.
    Argument: (node) => check(node.value, `Argument "${node.name.value}"`) ?? false,
    VariableDefinition: (node) => check(node.defaultValue, `The default value of variable "$${node.variable.name.value}"`),
  });
  literalsChecked.set(document, refused);
  return refused ?? undefined;
}

/** `nestsDeeperThanMax` for a literal of the document: lists and objects count, scalars and variables not. */
function valueNestsDeeperThanMax(value: ValueNode, depth: number): boolean {
  if (value.kind === Kind.LIST) {
    if (depth > MAX_VARIABLE_DEPTH) return true;
    return value.values.some((child) => valueNestsDeeperThanMax(child, depth + 1));
  }
  if (value.kind === Kind.OBJECT) {
    if (depth > MAX_VARIABLE_DEPTH) return true;
    return value.fields.some((field) => valueNestsDeeperThanMax(field.value, depth + 1));
  }
  return false;
}

/**
 * Whether `value`, an object or array at level `depth`, nests below it deeper than
 * MAX_VARIABLE_DEPTH. A recursion is safe: it descends MAX_VARIABLE_DEPTH + 1 levels at most, however
 * deep the value, and returns at the first level too deep. Scalars are skipped without a call.
 */
function nestsDeeperThanMax(value: object, depth: number): boolean {
  if (depth > MAX_VARIABLE_DEPTH) return true;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const child: unknown = value[index];
      if (typeof child === 'object' && child !== null && nestsDeeperThanMax(child, depth + 1)) return true;
    }
    return false;
  }
  for (const key in value) {
    if (!hasOwnProperty.call(value, key)) continue;
    const child: unknown = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && nestsDeeperThanMax(child, depth + 1)) return true;
  }
  return false;
}
