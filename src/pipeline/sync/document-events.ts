import { componentLogger, type Logger } from '../../logger.ts';
import { documentChange } from '../events/document-change.ts';
import { newEventId } from '../events/event-id.ts';
import type { EventRouter } from '../router/event-router.ts';
import { documentDiff } from './document-diff.ts';
import type { DocumentChange } from './document-writes.ts';
import { documentEntity, documentLogFields, documentTopic, savedButUnavailable, type DocumentKey } from './documents.ts';
import type { Slot } from '../coordination/keyed-serial.ts';
import { keyOfEvent, type DocumentEvent, type UnpublishedMarks } from './unpublished-events.ts';

export interface PublishOptions {
  /** The document's publishing turn, taken under its lock: earlier revisions first. */
  readonly slot?: Slot;
  /**
   * Whether an earlier event of the document may still be marked unpublished (the mark's write
   * tells); they are published first. @default true: looked up.
   */
  readonly earlier?: boolean;
  /**
   * Publish only if the event is still marked: a change published late (sync durability, answered
   * UNAVAILABLE and committed since) whose event the document's next write or the sweep may have
   * published already. @default false
   */
  readonly ifMarked?: boolean;
}

export interface DocumentEventPublisher {
  /**
   * Publishes a saved change's event (marked unpublished with the change), once the slot's turn
   * comes: first the document's earlier events still marked, then this one; then removes their
   * marks. @throws UNAVAILABLE naming the saved revision (`savedButUnavailable`: details `saved`,
   * `revision`) when the event could not be placed (its mark stays: the sweep publishes it later).
   */
  publish(key: DocumentKey, event: DocumentEvent, options?: PublishOptions): Promise<void>;
  /**
   * Publishes again events whose mark outlived its grace period (the sweep), in order — with a
   * warning each —, then removes their marks. @throws what placing them threw.
   */
  republish(events: readonly DocumentEvent[]): Promise<void>;
}

/** The event of a saved change, with its id: what is marked unpublished with the change, then published. */
export function documentEventOf(key: DocumentKey, change: DocumentChange): DocumentEvent {
  const { operation, before, after } = change;
  const data = operation === 'deleted' ? null : after.data;
  return {
    id: newEventId(),
    operation,
    scope: key.scope,
    payload: {
      service: key.service,
      documentId: key.id,
      revision: after.revision,
      data,
      ...(before && { diff: documentDiff(before.data, data) }),
    },
  };
}

/**
 * The events of a saved change: `sync.{service}.{operation}` for everyone and the document's own
 * stream for `document` subscriptions, with one id, so a client that sees both can tell they are
 * the same change. Payload `{ service, documentId, revision, data, diff }`; `diff` is the RFC 6902
 * patch from the previous data, for updates and deletes (linear in the documents' size, not always
 * the shortest: see `document-diff.ts`). Every event is marked unpublished with its change
 * (`unpublished-events.ts`) until it is in the log.
 */
export function createDocumentEventPublisher(router: EventRouter, marks: UnpublishedMarks, parentLogger: Logger): DocumentEventPublisher {
  const logger = componentLogger(parentLogger, 'sync');

  const route = async (event: DocumentEvent) => {
    const key = keyOfEvent(event);
    const input = documentChange({ ...event, entity: documentEntity(key) });
    await router.route({ ...input, topic: `sync.${key.service}.${event.operation}` });
    await router.route({ ...input, topic: documentTopic(key.service, key.id) });
  };

  /** Routes events whose first publish did not go out (or is not known to have). */
  const routeAgain = async (events: readonly DocumentEvent[], why: string) => {
    for (const event of events) {
      await route(event);
      logger.warn({ ...documentLogFields(keyOfEvent(event)), revision: event.payload.revision, eventId: event.id }, `document event published again (${why})`);
    }
  };

  const unmark = (key: DocumentKey, revisions: readonly number[]) =>
    marks.remove(key, revisions).catch((error: unknown) => {
      // Published: the sweep publishes it once more, with its id.
      logger.warn({ err: error, ...documentLogFields(key), revisions }, 'published document events still marked unpublished');
    });

  return {
    async publish(key, event, options = {}) {
      const { revision } = event.payload;
      const work = async () => {
        if (options.ifMarked) {
          const marked = await marks.earlier(key, revision + 1);
          if (!marked.some((mark) => mark.id === event.id)) {
            logger.debug({ ...documentLogFields(key), revision }, 'document event published already by another write or the sweep');
            return;
          }
        }
        const earlier = options.earlier === false ? [] : await marks.earlier(key, revision);
        await routeAgain(earlier, 'an earlier change of the document had not been published');
        await route(event);
        await unmark(key, [...earlier.map((lost) => lost.payload.revision), revision]);
      };
      await (options.slot ? options.slot.run(work) : work()).catch((error: unknown) => {
        logger.error({ err: error, ...documentLogFields(key), revision }, 'document event not published');
        throw savedButUnavailable(revision, `The change was saved as revision ${revision}, but its event could not be published; subscribers should refetch`, error);
      });
    },

    async republish(events) {
      await routeAgain(events, 'its first publish failed or was cut short');
      const byDocument = new Map<string, { key: DocumentKey; revisions: number[] }>();
      for (const event of events) {
        const key = keyOfEvent(event);
        const name = JSON.stringify([key.scope.app, key.scope.env, key.scope.tenant ?? '', key.service, key.id]);
        let document = byDocument.get(name);
        if (!document) byDocument.set(name, (document = { key, revisions: [] }));
        document.revisions.push(event.payload.revision);
      }
      for (const { key, revisions } of byDocument.values()) await unmark(key, revisions);
    },
  };
}
