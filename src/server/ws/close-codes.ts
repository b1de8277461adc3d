import { CloseCode as ProtocolCloseCode } from 'graphql-ws';

/**
 * Every code a Tributary socket can be closed with. The 44xx/45xx codes are the
 * graphql-transport-ws protocol's own (graphql-ws `CloseCode`); the rest are WebSocket standard
 * codes or Tributary's.
 */
export const CloseCode = {
  /** Server shutting down or restarting (RFC 6455 "going away"); reconnect elsewhere. */
  GoingAway: 1001,
  /** A message larger than `WS_MAX_PAYLOAD_BYTES` (RFC 6455 "message too big"). */
  MessageTooBig: 1009,
  /**
   * RFC 6455 "try again later": after `connection_init`, the principal holds
   * `WS_MAX_CONNECTIONS_PER_SUBJECT` sockets on this instance already, or the token's key cannot
   * be known yet because `JWT_JWKS_URL` cannot be reached (the verifier answered UNAVAILABLE);
   * at the upgrade, acknowledged sockets hold every `WS_MAX_CONNECTIONS` place of the instance (a
   * socket that finds them full before the upgrade gets HTTP 503 instead). Retried by graphql-ws
   * clients and `@tributary/client`, with their backoff.
   */
  TryAgainLater: 1013,
  /** The socket's outbound buffer outgrew its bound; reconnect and resume with the last cursor. */
  SlowConsumer: 4008,
  /** Malformed or unexpected message. */
  BadRequest: ProtocolCloseCode.BadRequest,
  /** `subscribe` before `connection_ack`. */
  Unauthorized: ProtocolCloseCode.Unauthorized,
  /**
   * Token missing or invalid at `connection_init` (the verifier refused it). Never a fault of the
   * server's: `@tributary/client` treats 4403 as unauthorized and stops (see InternalServerError).
   */
  Forbidden: ProtocolCloseCode.Forbidden,
  /**
   * The socket's token expired (plus the verifier's clock tolerance and `WS_TOKEN_EXPIRY_GRACE_MS`)
   * without a `refreshAuth`, or was already expired at `connection_init`. Not one
   * of the codes stock graphql-ws clients treat as fatal (4400, 4401, 4406, 4409, 4429, 4500): they
   * reconnect, calling `connectionParams` again for a fresh token.
   */
  TokenExpired: 4419,
  /** `refreshAuth` with a token of another subject, tenant, app or env; retried like 4419 (with that token). */
  PrincipalChanged: 4412,
  /** The client did not offer the `graphql-transport-ws` subprotocol. */
  SubprotocolNotAcceptable: ProtocolCloseCode.SubprotocolNotAcceptable,
  /** No `connection_init` within `WS_CONNECTION_INIT_TIMEOUT_MS`, or not acknowledged yet when a newer socket needed the place at `WS_MAX_CONNECTIONS`. */
  ConnectionInitialisationTimeout: ProtocolCloseCode.ConnectionInitialisationTimeout,
  /** A `subscribe` reused the id of an active operation. */
  SubscriberAlreadyExists: ProtocolCloseCode.SubscriberAlreadyExists,
  /** A second `connection_init`. */
  TooManyInitialisationRequests: ProtocolCloseCode.TooManyInitialisationRequests,
  /**
   * A fault inside the server: verifying `connection_init` failed unexpectedly, or an operation
   * failed outside its own error handling. Logged at error; the reason says only "Internal server
   * error". The protocol's code (graphql-ws's server sends it when `onConnect` throws):
   * `@tributary/client` retries it with backoff; stock graphql-ws clients treat it as fatal, as
   * they would 1011 (every 1000–1999 code but 1000, 1001, 1005, 1006, 1012, 1013 and 1014).
   */
  InternalServerError: ProtocolCloseCode.InternalServerError,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
