import { ErrorCode, TributaryError } from '../../errors.ts';
import { componentLogger, type Logger } from '../../logger.ts';
import { documentChange } from '../events/document-change.ts';
import { newEventId } from '../events/event-id.ts';
import type { EventRouter } from '../router/event-router.ts';
import { documentDiff } from './document-diff.ts';
import type { DocumentChange } from './document-writes.ts';
import { documentEntity, documentTopic, type DocumentKey } from './documents.ts';
import type { Slot } from '../coordination/keyed-serial.ts';

export interface DocumentEventPublisher {
  /**
   * Publishes a saved change, once the slot's turn comes when one is given (earlier revisions first).
   * @throws UNAVAILABLE naming the saved revision when the event could not be placed.
   */
  publish(key: DocumentKey, change: DocumentChange, slot?: Slot): Promise<void>;
}

/**
 * The events of a saved change: `sync.{service}.{operation}` for everyone and the document's own
 * stream for `document` subscriptions, with one id, so a client that sees both can tell they are
 * the same change. Payload `{ service, documentId, revision, data, diff }`; `diff` is the RFC 6902
 * patch from the previous data, for updates and deletes (linear in the documents' size, not always
 * the shortest: see `document-diff.ts`).
 */
export function createDocumentEventPublisher(router: EventRouter, parentLogger: Logger): DocumentEventPublisher {
  const logger = componentLogger(parentLogger, 'sync');
  return {
    async publish(key, change, slot) {
      const { operation, before, after } = change;
      const data = operation === 'deleted' ? null : after.data;
      const event = documentChange({
        id: newEventId(),
        scope: key.scope,
        entity: documentEntity(key),
        operation,
        payload: {
          service: key.service,
          documentId: key.id,
          revision: after.revision,
          data,
          ...(before && { diff: documentDiff(before.data, data) }),
        },
      });
      const route = async () => {
        await router.route({ ...event, topic: `sync.${key.service}.${operation}` });
        await router.route({ ...event, topic: documentTopic(key.service, key.id) });
      };
      await (slot ? slot.run(route) : route()).catch((error: unknown) => {
        logger.error({ err: error, service: key.service, documentId: key.id, revision: after.revision }, 'document event not published');
        throw new TributaryError(
          ErrorCode.UNAVAILABLE,
          `The change was saved as revision ${after.revision}, but its event could not be published; subscribers should refetch`,
          { cause: error, details: { revision: after.revision } },
        );
      });
    },
  };
}
