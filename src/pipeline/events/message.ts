/**
 * Messages published by clients (source `socket`, the `publish` mutation): the caller's topic,
 * `type` (default `message`) and payload, a JSON object kept as it was sent (at most
 * EVENT_MAX_PAYLOAD_BYTES). No `table`, `operation` or `revision` in the metadata; the scope is the
 * publisher's, from its token; the entity the publisher's, when it names one (a webhook endpoint
 * receives one entity's events in order).
 */
import type { RawEventInput } from './envelope.ts';
import type { Scope } from '../scope.ts';
import type { JsonObject } from './json.ts';

export interface MessageInput {
  readonly scope: Scope;
  readonly topic: string;
  readonly type: string;
  readonly payload: JsonObject;
  readonly entity?: string | undefined;
}

export function publishedMessage(input: MessageInput): RawEventInput {
  return { source: 'socket', topic: input.topic, type: input.type, scope: input.scope, payload: input.payload, ...(input.entity !== undefined && { entity: input.entity }) };
}
