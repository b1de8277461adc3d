import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { GraphQLFormattedError } from 'graphql';
import {
  GRAPHQL_TRANSPORT_WS_PROTOCOL,
  MessageType,
  parseMessage,
  type ID,
  type Message,
  type SubscribePayload,
} from 'graphql-ws';
import type WebSocket from 'ws';
import type { Principal } from '../../auth/principal.ts';
import { ErrorCode, faultOf, isClientFacing, isTributaryError, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { AuthRefresh } from '../../resolvers/context.ts';
import { MASKED_MESSAGE } from '../../schema/errors.ts';
import { CloseCode } from './close-codes.ts';
import type { GatewayEvent } from '../../pipeline/events/gateway-event.ts';
import { scopeOf } from '../../pipeline/scope.ts';
import type { OperationOutcome } from './executor.ts';
import { codedErrors, formatError, formatResult, PERMISSION_REVOKED, type OutgoingMessage } from './format.ts';
import { closeReason, rawDataToText, rawSocketOf } from './frames.ts';
import { filterAdmission, refusalOf, type ActiveOperation } from './operations.ts';
import { expiredFor, SocketAuth } from './socket-auth.ts';
import type { ConnectionOptions } from './connection-options.ts';
import { SocketWriter } from './socket-writer.ts';

/**
 * One graphql-transport-ws connection
 * (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md): the handshake with its
 * timeout, authentication at `connection_init`, the operations the client started, and the
 * closing rules. Owns its timers and operations; everything is released when the socket closes.
 */
export class GraphQLWsConnection {
  readonly #socket: WebSocket;
  readonly #options: ConnectionOptions;
  readonly #remote: string | undefined;
  readonly #out: SocketWriter;
  #childLogger: Logger | undefined;
  readonly #operations = new Map<ID, ActiveOperation>();
  /** Sum of the active operations' `bytes`. */
  #operationBytes = 0;
  #initReceived = false;
  readonly #auth: SocketAuth;
  #unregister: (() => void) | undefined;
  /** Gives the principal's place back (`quota`): at the socket's close event, once it holds no memory. */
  #leave: (() => void) | undefined;
  /** `connection_ack` went out: from here to the close, the socket's gateway events are told. */
  #acknowledged = false;
  #id: string | undefined;
  /** The code this side closed with (the close event may report the peer's echo, or 1006). */
  #closeCode: number | undefined;
  #initTimer: NodeJS.Timeout | undefined;
  /** A ping refresh is being verified: one at a time per socket (each costs a verification and a pass over the operations). */
  #pingRefreshing = false;
  #closed = false;

  constructor(socket: WebSocket, request: IncomingMessage, options: ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#remote = request.socket.remoteAddress;
    this.#out = new SocketWriter(socket, options.rawFrames ? rawSocketOf(socket) : undefined, options.maxBufferedBytes, () => {
      options.metrics?.slowConsumers.inc();
      this.close(CloseCode.SlowConsumer, 'Slow consumer: outbound buffer exceeded');
    });
    this.#auth = new SocketAuth({
      verifier: options.verifier,
      graceMs: options.tokenExpiryGraceMs,
      noticeMs: options.tokenExpiryNoticeMs,
      notify: (payload) => this.#send({ type: MessageType.Ping, payload }),
      expired: () => this.close(CloseCode.TokenExpired, 'Token expired: reconnect with a new token'),
      upgradeAuthorization: request.headers.authorization,
    });

    socket.on('close', (code) => {
      this.#release();
      this.#leave?.();
      if (this.#acknowledged) this.#tell({ type: 'gateway.disconnected', code: this.#closeCode ?? code });
    });
    socket.on('error', (error) => this.#logger.debug({ err: error }, 'socket error'));

    if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) {
      this.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    socket.on('message', (data) => this.#onMessage(rawDataToText(data)));
    // Looked at again after the event loop's I/O phase: after a stall (a long task, a paused
    // process) the timer runs before a `connection_init` that arrived in time is read.
    this.#initTimer = setTimeout(() => setImmediate(() => {
      if (!this.#initReceived) this.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
    }), options.connectionInitTimeoutMs);
  }

  /** Made on first use: most connections never log, and a child logger per socket costs memory. */
  get #logger(): Logger {
    this.#childLogger ??= this.#options.logger.child({ remote: this.#remote });
    return this.#childLogger;
  }

  /** Made on first use, like the logger: a socket that runs nothing never needs one. */
  get #connectionId(): string {
    this.#id ??= randomUUID();
    return this.#id;
  }

  /** Active operations, for metrics and the subscription cap. */
  get operationCount(): number {
    return this.#operations.size;
  }

  /** Closes with a code and a reason (truncated to what a close frame can carry). */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeCode = code;
    this.#release();
    this.#socket.close(code, closeReason(reason));
  }

  #onMessage(data: string): void {
    if (this.#closed) return;
    let message: Message;
    try {
      message = parseMessage(data);
    } catch (error) {
      this.close(CloseCode.BadRequest, error instanceof Error ? error.message : 'Invalid message received');
      return;
    }

    switch (message.type) {
      case MessageType.ConnectionInit:
        this.#onConnectionInit(message.payload);
        return;
      case MessageType.Ping:
        // A ping carrying `{ token }` is a refresh (the in-band fast path); its pong says how it went.
        if (typeof message.payload?.['token'] === 'string') this.#pingRefresh(message.payload['token']);
        else this.#send(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong });
        return;
      case MessageType.Pong:
        return;
      case MessageType.Subscribe:
        this.#onSubscribe(message.id, message.payload, Buffer.byteLength(data));
        return;
      case MessageType.Complete: {
        const operation = this.#operations.get(message.id);
        if (operation) this.#cancel(message.id, operation);
        return;
      }
      default:
        this.close(CloseCode.BadRequest, `Unexpected message of type ${message.type} received`);
    }
  }

  #onConnectionInit(payload: Record<string, unknown> | undefined): void {
    if (this.#initReceived) {
      this.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
      return;
    }
    this.#initReceived = true;
    clearTimeout(this.#initTimer);
    this.#auth.verifyInit(payload).then(
      (principal) => {
        if (this.#closed) return;
        if (!this.#auth.start(principal)) {
          this.close(CloseCode.TokenExpired, 'Token expired: reconnect with a new token');
          return;
        }
        const leave = this.#options.quota.take(principal);
        if (!leave) {
          this.#options.metrics?.connectionsRefused.inc({ limit: 'subject' });
          this.close(CloseCode.TryAgainLater, 'Too many sockets for this subject: try again later');
          return;
        }
        this.#send({ type: MessageType.ConnectionAck });
        this.#acknowledged = true;
        this.#leave = leave;
        this.#unregister = this.#options.sessions?.add(this.#connectionId, (token) => this.#refreshAuth(token));
        this.#tell({ type: 'gateway.connected' });
      },
      (error: unknown) => {
        // Unavailable key set: 1013 (retried); expired token: 4419 (retried with a fresh one); else 4403.
        const refusal = this.#auth.initRefusal(error);
        if (refusal.unexpected) this.#logger.error({ err: error, fault: faultOf(error) }, 'token verification failed unexpectedly');
        this.close(refusal.code, refusal.reason);
      },
    );
  }

  /**
   * A new token for this socket (`refreshAuth`, or a ping with `{ token }`): the same subject and
   * tenant, or the socket closes (4412). Subscriptions the new principal may not read end with
   * FORBIDDEN at once; the others are not touched, so they lose and repeat nothing. Refreshes
   * apply one at a time, in the order they arrived (`SocketAuth.refresh`).
   */
  #refreshAuth(token: string): Promise<AuthRefresh> {
    return this.#auth.refresh(token, (result) => {
      if (result.kind === 'principal-changed') {
        this.close(CloseCode.PrincipalChanged, 'Principal changed: reconnect with the new token');
        throw new TributaryError(ErrorCode.FORBIDDEN, 'A refreshed token must have the same subject, tenant, app and env');
      }
      let stopped = 0;
      for (const [id, operation] of this.#operations) if (this.#revokeIfUnreadable(id, operation)) stopped += 1;
      const { expiresAt } = result.principal;
      return { expiresAt: expiresAt === undefined ? null : new Date(expiresAt), stoppedSubscriptions: stopped };
    });
  }

  #pingRefresh(token: string): void {
    if (this.#pingRefreshing) {
      this.#send({ type: MessageType.Pong, payload: { error: ErrorCode.RATE_LIMITED } });
      return;
    }
    this.#pingRefreshing = true;
    // Whatever fails — the refresh or building its answer — ends in a pong, never in an unhandled rejection.
    this.#refreshAuth(token)
      .finally(() => {
        this.#pingRefreshing = false;
      })
      .then((refreshed) => ({ tokenExpiresAt: refreshed.expiresAt?.toISOString() ?? null, stoppedSubscriptions: refreshed.stoppedSubscriptions }))
      .then(
        (payload) => this.#send({ type: MessageType.Pong, payload }),
        (error: unknown) => {
          if (!isClientFacing(error)) this.#logger.error({ err: error, fault: faultOf(error) }, 'ping refresh failed');
          this.#send({ type: MessageType.Pong, payload: { error: isClientFacing(error) ? error.code : ErrorCode.INTERNAL_SERVER_ERROR } });
        },
      );
  }

  /** Ends an operation the current principal may no longer read; true when it did. */
  #revokeIfUnreadable(id: ID, operation: ActiveOperation): boolean {
    const principal = this.#auth.principal;
    if (!operation.readableBy || !principal || operation.readableBy(principal)) return false;
    this.#cancel(id, operation);
    this.#send({ id, type: MessageType.Error, payload: PERMISSION_REVOKED });
    return true;
  }

  #onSubscribe(id: ID, payload: SubscribePayload, bytes: number): void {
    const principal = this.#auth.principal;
    if (!principal) {
      this.close(CloseCode.Unauthorized, 'Unauthorized');
      return;
    }
    const bounds = { maxOperations: this.#options.maxOperations, maxBytes: this.#options.maxOperationBytes };
    const refusal = refusalOf(id, bytes, this.#operations, this.#operationBytes, bounds);
    if (refusal?.kind === 'close') {
      this.close(refusal.code, refusal.reason);
      return;
    }
    if (refusal) {
      this.#send({ id, type: MessageType.Error, payload: refusal.errors });
      return;
    }
    const expired = expiredFor(principal, payload);
    if (expired) {
      this.#send({ id, type: MessageType.Error, payload: codedErrors(expired) });
      return;
    }
    // Reserve the id before any await, so a duplicate arriving during setup is caught above.
    const operation: ActiveOperation = { cancelled: false, results: undefined, dispatched: undefined, readableBy: undefined, bytes };
    this.#operations.set(id, operation);
    this.#operationBytes += bytes;
    this.#run(id, operation, principal, payload).catch((error: unknown) => {
      this.#logger.error({ err: error, operationId: id }, 'operation failed');
      this.close(CloseCode.InternalServerError, 'Internal server error');
    });
  }

  async #run(id: ID, operation: ActiveOperation, principal: Principal, payload: SubscribePayload): Promise<void> {
    const outcome = await this.#options.execute(principal, payload, this.#connectionId, filterAdmission(this.#options.filterBudget, principal, operation));
    if (outcome.kind === 'rejected') {
      this.#finish(id, operation, { id, type: MessageType.Error, payload: outcome.errors.map(formatError) });
      return;
    }
    if (outcome.kind === 'dispatch') {
      await this.#dispatch(id, operation, outcome);
      return;
    }
    if (outcome.kind === 'single') {
      if (!operation.cancelled) this.#send({ id, type: MessageType.Next, payload: formatResult(outcome.result) });
      this.#finish(id, operation, { id, type: MessageType.Complete });
      return;
    }

    operation.results = outcome.results;
    if (operation.cancelled) {
      // `complete` (or the socket's close) arrived while the subscription was being set up.
      await outcome.results.return?.();
      return;
    }
    operation.readableBy = outcome.readableBy;
    // A refresh while this subscription was being set up checked it against nothing: check now.
    if (this.#revokeIfUnreadable(id, operation)) return;
    this.#tell({ type: 'gateway.subscribed', field: outcome.field, topic: undefined });
    try {
      for await (const result of outcome.results) {
        if (operation.cancelled) break;
        this.#send({ id, type: MessageType.Next, payload: formatResult(result) });
      }
    } catch (error) {
      // A source that fails (e.g. a subscriber that fell behind) ends this operation, not the socket.
      this.#finish(id, operation, { id, type: MessageType.Error, payload: this.#clientErrors(error, id, 'subscription source failed') });
      return;
    }
    this.#finish(id, operation, { id, type: MessageType.Complete });
  }

  /**
   * Hands a subscription to the dispatcher. Its `next` frames are built by concatenation: the
   * payload JSON is shared by the whole cohort; only the id prefix is this subscriber's.
   */
  async #dispatch(id: ID, operation: ActiveOperation, outcome: Extract<OperationOutcome, { kind: 'dispatch' }>): Promise<void> {
    // Denied: the operation stays open and silent, like a quiet stream (no enumeration).
    if (outcome.ticket.denied) return;
    const head = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
    try {
      const dispatched = await this.#options.dispatcher.subscribe({
        stream: outcome.ticket.stream,
        cohort: { ...outcome.cohort, filter: outcome.ticket.filter },
        after: outcome.ticket.after,
        initial: outcome.ticket.initial,
        admit: outcome.ticket.admit,
        beforeNewStream: outcome.ticket.beforeNewStream,
        sink: {
          next: (rendered) => {
            if (operation.cancelled) return;
            rendered.utf8 ??= Buffer.from(rendered.json);
            if (!this.#closed) this.#out.sendFrame(head, rendered.utf8);
          },
          fail: (error) => {
            this.#finish(id, operation, { id, type: MessageType.Error, payload: this.#clientErrors(error, id, 'dispatched subscription failed') });
          },
          drained: () => this.#out.drained(),
        },
      });
      if (operation.cancelled) {
        dispatched.dispose();
        return;
      }
      operation.dispatched = dispatched;
      operation.readableBy = outcome.ticket.readableBy;
      // A refresh while this subscription was being set up checked it against nothing: check now.
      if (this.#revokeIfUnreadable(id, operation)) return;
      this.#tell({ type: 'gateway.subscribed', field: outcome.field, topic: outcome.ticket.stream.topic });
    } catch (error) {
      if (!isTributaryError(error)) throw error;
      this.#finish(id, operation, { id, type: MessageType.Error, payload: this.#clientErrors(error, id, 'dispatched subscription failed') });
    }
  }

  /**
   * What the client may see of an error that ended an operation: a client-facing error as it
   * is; an internal fault (an InternalError, a TributaryError coded INTERNAL_SERVER_ERROR,
   * anything else) is logged with its cause and masked.
   */
  #clientErrors(error: unknown, id: ID, what: string): GraphQLFormattedError[] {
    if (isClientFacing(error)) return codedErrors(error);
    this.#logger.error({ err: error, fault: faultOf(error), operationId: id }, what);
    return [{ message: MASKED_MESSAGE, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } }];
  }

  /** Sends the operation's last message (unless the client already stopped it) and forgets it. */
  #finish(id: ID, operation: ActiveOperation, last: OutgoingMessage): void {
    if (this.#operations.get(id) === operation) this.#forget(id, operation);
    if (!operation.cancelled) this.#send(last);
  }

  #cancel(id: ID, operation: ActiveOperation): void {
    operation.cancelled = true;
    this.#forget(id, operation);
    operation.dispatched?.dispose();
    operation.results?.return?.().catch((error: unknown) => this.#logger.warn({ err: error }, 'failed to stop a subscription'));
  }

  #forget(id: ID, operation: ActiveOperation): void {
    if (!this.#operations.delete(id)) return;
    this.#operationBytes -= operation.bytes;
    operation.givesBackFilter?.();
  }

  /** A gateway event about this socket, in its principal's scope (fire-and-forget: never delays or fails the socket). */
  #tell(event: GatewayEvent): void {
    const principal = this.#auth.principal;
    if (!this.#options.gateway || !principal) return;
    this.#options.gateway.emit({ scope: scopeOf(principal), connectionId: this.#connectionId, subject: principal.subject, event });
  }

  #send(message: OutgoingMessage): void {
    if (!this.#closed) this.#out.send(JSON.stringify(message));
  }

  #release(): void {
    this.#closed = true;
    clearTimeout(this.#initTimer);
    this.#auth.dispose();
    this.#unregister?.();
    for (const [id, operation] of this.#operations) this.#cancel(id, operation);
  }
}
