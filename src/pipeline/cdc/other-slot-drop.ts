/**
 * `dropCdcSlot`: an admin drops another Tributary slot of their environment's source database (one
 * the `cdc.retained_wal` alert named: `wal/other-slots.ts`), typically left by a deployment stopped
 * for good. Only a slot named as Tributary names that database's slots, never this deployment's
 * own (its reader's position), never one someone streams now (another deployment's running reader:
 * Postgres refuses it too). A slot of another deployment that is only down at that moment is
 * dropped: its reader then finds it lost, and says so (`cdc.slot_lost`), when it comes back.
 */
import { isConnectionFailure } from '../../db/connection-failure.ts';
import { badUserInput, ErrorCode, isTributaryError, SqlState, sqlStateOf, TributaryError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { CdcStore } from './cdc-store.ts';
import type { DeploymentNaming } from './deployment-slots.ts';
import { namesOf } from './source-names.ts';
import { isTributarySlotOf } from './wal/other-slots.ts';
import { defaultReplicationNames, type DatabaseIdentity } from './wal/replication-names.ts';
import type { SourceConnections } from './wal/source-connections.ts';

export interface OtherSlotDropOptions {
  readonly store: Pick<CdcStore, 'getSource'>;
  readonly connectionsOf: (url: string) => SourceConnections;
  readonly identityOf: (url: string) => Promise<DatabaseIdentity>;
  readonly naming: () => Promise<DeploymentNaming>;
  readonly logger: Logger;
}

/**
 * Drops `slotName` on the source database of `scope`; false when there is no such slot there.
 * @throws NOT_FOUND (no source), BAD_USER_INPUT (`details.reason` `NOT_TRIBUTARY_SLOT` or `OWN_SLOT`),
 * CONFLICT (`SLOT_ACTIVE`), UNAVAILABLE (the database cannot be reached).
 */
export async function dropOtherSlot(options: OtherSlotDropOptions, scope: { readonly app: string; readonly env: string }, slotName: string): Promise<boolean> {
  const source = await options.store.getSource(scope.app, scope.env);
  if (!source) throw new TributaryError(ErrorCode.NOT_FOUND, 'This environment has no CDC source (setCdcSource)');
  let identity: DatabaseIdentity;
  try {
    identity = await options.identityOf(source.databaseUrl);
  } catch (error) {
    throw new TributaryError(ErrorCode.UNAVAILABLE, 'The CDC source database cannot be reached; retry shortly', { cause: error });
  }
  const base = defaultReplicationNames(identity).publicationName;
  if (!isTributarySlotOf(base, slotName)) {
    throw badUserInput('slotName', `"${slotName}" is not a Tributary slot of this source database: only ${base} and ${base}_<12 hex digits> are dropped here`, {
      reason: 'NOT_TRIBUTARY_SLOT',
    });
  }
  if (namesOf((await options.naming()).derived(identity), [source]).slotName === slotName) {
    throw badUserInput('slotName', `"${slotName}" is this deployment's own slot, which its reader reads: remove the source (removeCdcSource) to drop it`, { reason: 'OWN_SLOT' });
  }
  const active = (): TributaryError =>
    new TributaryError(ErrorCode.CONFLICT, `Replication slot "${slotName}" is streamed now (another deployment's reader, or another tool): stop its reader first`, {
      details: { field: 'slotName', reason: 'SLOT_ACTIVE' },
    });
  const dropped = await options
    .connectionsOf(source.databaseUrl)
    .withClient(async (client) => {
      const found = async () =>
        (await client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()', [slotName])).rows[0];
      const slot = await found();
      if (slot === undefined) return false;
      if (slot.active) throw active();
      try {
        await client.query('SELECT pg_drop_replication_slot($1)', [slotName]);
      } catch (error) {
        // Taken, or dropped, between the two statements.
        if (sqlStateOf(error) === SqlState.OBJECT_IN_USE) throw active();
        if ((await found()) === undefined) return false;
        throw error;
      }
      return true;
    })
    .catch((error: unknown) => {
      if (isTributaryError(error) || !isConnectionFailure(error)) throw error;
      throw new TributaryError(ErrorCode.UNAVAILABLE, 'The CDC source database cannot be reached; retry shortly', { cause: error });
    });
  if (dropped) options.logger.info({ app: scope.app, env: scope.env, slot: slotName }, 'dropped another Tributary replication slot of the source database (dropCdcSlot)');
  return dropped;
}
