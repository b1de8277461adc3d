import type { Principal } from '../auth/principal.ts';
import type { ChannelHub } from '../pipeline/channels/channel-hub.ts';

/** What the API's resolvers may use; built once in `main.ts`. */
export interface Services {
  readonly channels: ChannelHub;
}

/** The per-operation context every resolver receives. */
export interface ResolverContext {
  /** From a verified token (or the development principal); never from client input. */
  readonly principal: Principal;
  readonly services: Services;
}
