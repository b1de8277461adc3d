import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import type { Plugin } from 'graphql-yoga';
import { GraphQLError, parse, type ParseOptions, type Source, type ValidationContext, type ValidationRule } from 'graphql';
import type { Limits } from '../config.ts';
import { ErrorCode } from '../errors.ts';

export type OperationLimits = Pick<Limits, 'maxDepth' | 'maxAliases' | 'maxTokens'>;

/**
 * Depth, alias and token limits as one envelop plugin. It runs wherever the envelope runs —
 * yoga's HTTP handler and the WebSocket executor alike — so no transport bypasses it.
 * A rejected operation gets `extensions.code = QUERY_TOO_COMPLEX`; any other syntax error
 * GRAPHQL_PARSE_FAILED.
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
      setParseFn((source: string | Source, options?: ParseOptions) => {
        try {
          return parse(source, { ...options, maxTokens: limits.maxTokens });
        } catch (error) {
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
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
    },
  };
}
