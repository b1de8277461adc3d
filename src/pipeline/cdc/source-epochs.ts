/**
 * When a source's streams start a new history (epoch): whenever its reader may have missed changes.
 * - `created`: a slot created now holds nothing of what happened before it, and whether an earlier
 *   slot existed cannot be told reliably in every case (a lost status, a new leader), so it is
 *   always assumed. The cost when nothing was lost: subscribers of these topics resync once.
 * - `recreated`: the slot was lost (or dropped) and made again: changes are missing.
 * - `taken`: another reader confirmed changes on the slot, which this deployment never gets (the
 *   slot was found ahead of the reader's own position, or this deployment was refused the slot
 *   while another streamed it, `deployment-slots.ts`).
 * Subscribers holding a position in the old history are told RESYNC_REQUIRED; the missed changes
 * also raise `cdc.slot_lost`.
 */
import type { Logger } from '../../logger.ts';
import type { EventLog } from '../log/event-log.ts';
import type { CdcBinding } from './cdc-binding.ts';
import type { CdcStore } from './cdc-store.ts';
import { modelTopic, topicPattern } from './mapping/mapping-topics.ts';

export type HistoryBreak = 'created' | 'recreated' | 'taken';

export interface SourceEpochsOptions {
  /** The source's id. */
  readonly source: string;
  readonly slotName: string;
  readonly log: Pick<EventLog, 'renewEpochs'>;
  readonly store: Pick<CdcStore, 'noteSlotLost'>;
  readonly logger: Logger;
}

/** Renews the epochs of the topics `bindings` map to (their mappings' topics and model streams). */
export async function renewSourceEpochs(options: SourceEpochsOptions, bindings: readonly CdcBinding[], why: HistoryBreak): Promise<void> {
  const { logger } = options;
  const matchers = bindings.map((binding) => ({
    scope: binding.scope,
    topics: binding.mappings.flatMap((mapping) => [topicPattern(modelTopic(mapping)), topicPattern(mapping.topic)]),
  }));
  const renewed = await options.log.renewEpochs((scope, topic) =>
    matchers.some((m) => m.scope.app === scope.app && m.scope.env === scope.env && m.topics.some((pattern) => pattern.test(topic))),
  );
  if (why === 'created') {
    logger.info({ renewed }, 'replication slot created; streams of this source start a new epoch');
    return;
  }
  logger.warn(
    { renewed, slot: options.slotName },
    why === 'recreated'
      ? 'replication slot was recreated: changes may be missing; streams get a new epoch (clients resync)'
      : 'another reader confirmed changes on the replication slot, which this deployment never got; streams get a new epoch (clients resync)',
  );
  await options.store.noteSlotLost(options.source).catch((error: unknown) => logger.warn({ err: error }, 'the lost slot could not be noted for the alerts'));
}
