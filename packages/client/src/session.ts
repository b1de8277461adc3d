/**
 * One acknowledged socket: the operations run on it, and the signal that says it is gone. A new
 * socket is a new session; every subscription resumes on it from its own cursor (graphql-ws's own
 * resubscription would re-send the original variables — the events of the gap would be skipped —
 * so the client never lets graphql-ws retry).
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import type { Client, FormattedExecutionResult } from 'graphql-ws';
import type { HandlerErrorReport } from './handler-errors.ts';
import { closeCodeOf, closeReasonOf, isGraphQLErrorList, MESSAGE_TOO_BIG, MessageTooLargeError, SessionEndedError, TributaryRequestError } from './errors.ts';
import { frameBytes, OversizeWatch } from './oversize-watch.ts';
import { tokenGrants } from './token.ts';

const printed = new WeakMap<object, string>();

export type Variables = Record<string, unknown>;

/**
 * An operation: a document (a generated one is typed: its result and variables), or its text —
 * sent as it is, for the server to parse (a syntax error is its GRAPHQL_PARSE_FAILED), with no
 * parser in the client's bundle.
 */
export type Operation<TData, TVariables extends Variables> = TypedDocumentNode<TData, TVariables> | string;

/** The query text of an operation (a document printed once). */
function queryOf(document: Operation<unknown, never>): string {
  if (typeof document === 'string') return document;
  let query = printed.get(document);
  if (query === undefined) {
    query = print(document);
    printed.set(document, query);
  }
  return query;
}

/**
 * `query TributaryProbe { __typename }`, the cheapest operation there is: only its answer matters
 * (`Session.roundTrip`). Written as its AST, as the generated documents are: `parse` would bring
 * graphql's lexer and parser into every browser bundle for one line.
 */
const PROBE = {
  kind: 'Document',
  definitions: [
    {
      kind: 'OperationDefinition',
      operation: 'query',
      name: { kind: 'Name', value: 'TributaryProbe' },
      selectionSet: { kind: 'SelectionSet', selections: [{ kind: 'Field', name: { kind: 'Name', value: '__typename' } }] },
    },
  ],
} as unknown as TypedDocumentNode<{ __typename: string }, Record<string, never>>;

export class Session {
  readonly #client: Client;
  /** Told what an `onData` threw (the client's `onError`): the stream goes on. */
  readonly #report: HandlerErrorReport;
  /** The largest `subscribe` frame sent (UTF-8 bytes): a larger one fails at once (`MessageTooLargeError`). */
  readonly #maxMessageBytes: number;
  /** Which operation a 1009 close was for (see oversize-watch.ts). */
  readonly #oversize = new OversizeWatch();
  /** Aborted when the socket is gone. */
  readonly signal: AbortSignal;
  /**
   * What the token the server holds for this socket lets it read (`tokenGrants`): the one of its
   * `connection_init`, then of each token handed over in-band. A live model compares it with the
   * grants its snapshot was read under.
   */
  grants = tokenGrants(undefined);

  constructor(client: Client, signal: AbortSignal, report: HandlerErrorReport, maxMessageBytes = Number.POSITIVE_INFINITY) {
    this.#client = client;
    this.signal = signal;
    this.#report = report;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** A query or mutation on this socket. @throws TributaryRequestError, SessionEndedError */
  async execute<TData, TVariables extends Variables>(document: Operation<TData, TVariables>, variables: TVariables, signal?: AbortSignal): Promise<TData> {
    let result: TData | undefined;
    await this.#operate(document, variables, (data) => void (result = data), signal, false);
    if (result === undefined) throw new TributaryRequestError([{ message: 'The server sent no result' }]);
    return result;
  }

  /**
   * A subscription on this socket: `onData` for every result, in order; settles when the server
   * completes it. Rejects with TributaryRequestError when the server answers with errors (an
   * `error` message, or a result carrying errors), and with SessionEndedError when the socket goes
   * away or `signal` aborts — then nothing more reaches `onData`. What `onData` throws (an
   * application's handler, called from it) is reported and the stream goes on: thrown into
   * graphql-ws, it would close the socket, and every subscription on it would start again.
   *
   * A `subscribe` frame over `maxMessageBytes` is not sent: it rejects with MessageTooLargeError
   * (a permanent refusal). So does a subscription the server closed the socket for (1009: its
   * frame the largest the server had not answered), instead of SessionEndedError: resent on every
   * socket, it would close each one, and every other subscription with it.
   */
  stream<TData, TVariables extends Variables>(
    document: Operation<TData, TVariables>,
    variables: TVariables,
    onData: (data: TData) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.#operate(document, variables, onData, signal, true);
  }

  /** `stream`; a request (`execute`) that the server closed the socket for ends with SessionEndedError(1009), as before. */
  #operate<TData, TVariables extends Variables>(
    document: Operation<TData, TVariables>,
    variables: TVariables,
    onData: (data: TData) => void,
    signal: AbortSignal | undefined,
    subscription: boolean,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const signals = signal ? [this.signal, signal] : [this.signal];
      let settled = false;
      const finish = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        for (const each of signals) each.removeEventListener('abort', onAbort);
        outcome();
      };
      if (signals.some((each) => each.aborted)) {
        reject(this.#ended());
        return;
      }
      const payload = { query: queryOf(document), variables };
      const bytes = frameBytes(payload);
      if (bytes > this.#maxMessageBytes) {
        reject(new MessageTooLargeError(bytes, this.#maxMessageBytes));
        return;
      }
      const sent = this.#oversize.sent(bytes);
      /** Why it ended when the socket went: this subscription's frame, when the server closed it for its size (1009). */
      const endedWith = (closeCode: number | undefined, reason: string | undefined) =>
        subscription && closeCode === MESSAGE_TOO_BIG && this.#oversize.culprit() === sent
          ? new MessageTooLargeError(bytes, undefined, closeCode)
          : new SessionEndedError(closeCode, reason);
      const onAbort = () => {
        release();
        const reason: unknown = this.signal.aborted ? this.signal.reason : undefined;
        const ended = reason instanceof SessionEndedError ? reason : undefined;
        finish(() => reject(endedWith(ended?.closeCode, ended?.reason)));
      };
      const unsubscribe = this.#client.subscribe<TData>(
        payload,
        {
          next: (result: FormattedExecutionResult<TData>) => {
            // The server answered: it read this frame, and every one sent before (in order).
            this.#oversize.answered(sent);
            if (settled) return;
            if (result.errors?.length) {
              release();
              finish(() => reject(new TributaryRequestError(result.errors ?? [], result.data as Readonly<Record<string, unknown>> | null | undefined)));
              return;
            }
            if (result.data === undefined || result.data === null) return;
            try {
              onData(result.data);
            } catch (error) {
              this.#report(error);
            }
          },
          error: (error: unknown) => {
            // A list of GraphQL errors is the server's answer; anything else (a close event) means the socket went.
            if (isGraphQLErrorList(error)) {
              this.#oversize.answered(sent);
              finish(() => reject(new TributaryRequestError(error)));
            } else finish(() => reject(endedWith(closeCodeOf(error), closeReasonOf(error))));
          },
          complete: () => {
            if (!this.signal.aborted) this.#oversize.answered(sent);
            finish(() => (this.signal.aborted ? reject(this.#ended()) : resolve()));
          },
        },
      );
      // Ended by us only after the messages graphql-ws is handing over now: the server follows an
      // errored result with `complete`, often in the same read. Completed from inside the `next`
      // callback, the operation would be counted as ended twice — graphql-ws's `complete` handler
      // releases it again before its listener goes (graphql-ws 6.4, client.js `subscribe`) — and at
      // zero operations it closes the socket (1000), every other subscription's with it. A
      // microtask later the server's `complete` was handled (unsubscribing is then a no-op), or
      // our release finished first and the server's one finds no listener.
      const release = () => queueMicrotask(unsubscribe);
      for (const each of signals) each.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Resolves once the server answered an operation sent now — a result or a refusal alike; rejects
   * (SessionEndedError) when the socket goes first. graphql-transport-ws acknowledges no
   * subscription. An answer to this probe sent after a `subscribe` with no refusal seen says the
   * server read that `subscribe` and did not refuse it as it read it (the socket's operation
   * limit); it does not say it never will: a refusal decided after a Redis round trip (a subject's
   * new-stream rate, UNAVAILABLE) may come after this answer. One more operation on the socket,
   * so sent only after a refusal (see live-model.ts, events.ts), never per subscription.
   */
  async roundTrip(signal?: AbortSignal): Promise<void> {
    try {
      await this.execute(PROBE, {}, signal);
    } catch (error) {
      if (!(error instanceof TributaryRequestError)) throw error;
    }
  }

  /** The error of an operation cut short: with the socket's close code when the server or the network closed it. */
  #ended(): SessionEndedError {
    const reason: unknown = this.signal.reason;
    return reason instanceof SessionEndedError ? new SessionEndedError(reason.closeCode, reason.reason) : new SessionEndedError();
  }
}
