import { componentLogger, type Logger } from '../../logger.ts';
import type { KeyedSerial } from '../coordination/keyed-serial.ts';
import type { DocumentEventPublisher } from './document-events.ts';
import { documentEntity, documentLogFields, type DocumentKey } from './documents.ts';
import { keyOfEvent, type UnpublishedMarks } from './unpublished-events.ts';

/**
 * The sweep that publishes again the document events whose mark outlived its grace period
 * (`unpublished-events.ts`): their writer died between saving the change and publishing it, or
 * the event log refused the event. Every `intervalMs`, at most `batch` due events; each document's
 * in revision order, in its publishing turn on this instance and, with a cache, under its write
 * lock across instances (a document being written is left to its writer, whose publish takes the
 * earlier marked events first). Each event goes out with its own id, logged as a warning.
 */
export interface Republisher {
  /** One pass; answers how many events were published again. */
  sweep(): Promise<number>;
  /** Stops the timer and waits for a pass in progress. Idempotent. */
  close(): Promise<void>;
}

export interface RepublisherOptions {
  readonly marks: UnpublishedMarks;
  readonly publisher: DocumentEventPublisher;
  /** This instance's publishing turns, per document entity (the writers' own). */
  readonly turns: KeyedSerial;
  /** Runs `work` under the document's write lock across instances; answers false, running nothing, when another holds it. */
  readonly lock?: (key: DocumentKey, work: () => Promise<void>) => Promise<boolean>;
  readonly logger: Logger;
  /** @default 5000 */
  readonly intervalMs?: number;
  /** Due events one pass takes at most. @default 100 */
  readonly batch?: number;
}

export function createRepublisher(options: RepublisherOptions): Republisher {
  const { marks, publisher, turns, lock } = options;
  const logger = componentLogger(options.logger, 'sync-republish');
  const batch = options.batch ?? 100;
  let sweeping: Promise<number> | undefined;
  let closed: Promise<void> | undefined;

  /** Publishes the document's marked events up to `upTo` (read again in its turn: a writer may have published them meanwhile). */
  const republishDocument = async (key: DocumentKey, upTo: number): Promise<number> => {
    let count = 0;
    const work = async () => {
      const events = await marks.earlier(key, upTo + 1);
      await publisher.republish(events);
      count = events.length;
    };
    await turns.run([documentEntity(key)], async () => {
      if (lock) await lock(key, work);
      else await work();
    });
    return count;
  };

  const sweepOnce = async (): Promise<number> => {
    const due = await marks.due(batch);
    const documents = new Map<string, { key: DocumentKey; upTo: number }>();
    for (const event of due) {
      const key = keyOfEvent(event);
      const name = JSON.stringify([key.scope.app, key.scope.env, key.scope.tenant ?? '', key.service, key.id]);
      const known = documents.get(name);
      documents.set(name, { key, upTo: Math.max(known?.upTo ?? 0, event.payload.revision) });
    }
    let published = 0;
    for (const { key, upTo } of documents.values()) {
      try {
        published += await republishDocument(key, upTo);
      } catch (error) {
        logger.warn({ err: error, ...documentLogFields(key) }, 'document events still unpublished; retried at a later sweep');
      }
    }
    return published;
  };

  const sweep = (): Promise<number> => {
    sweeping ??= sweepOnce().finally(() => (sweeping = undefined));
    return sweeping;
  };

  const timer = setInterval(() => {
    if (closed) return;
    sweep().catch((error: unknown) => logger.warn({ err: error }, 'unpublished document events not looked at; retrying at the next sweep'));
  }, options.intervalMs ?? 5000);
  timer.unref();

  return {
    sweep,
    close() {
      closed ??= (async () => {
        clearInterval(timer);
        await sweeping?.catch(() => undefined);
      })();
      return closed;
    },
  };
}
