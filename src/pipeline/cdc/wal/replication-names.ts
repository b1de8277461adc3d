/**
 * Which database a source URL reaches, and what its slot and publication are called.
 *
 * Identity. Two URLs reach the same database when its cluster's system identifier (set by initdb,
 * the same on every host alias, user or query string) and its name are the same. Readers are
 * keyed by this identity, not by the URL text: one reader and one slot per database, however many
 * environments point at it and however they spell its URL.
 *
 * Names. A slot name is unique per Postgres server and a publication name per database, so a
 * fixed name would make two sources on one server fight over one slot. The default names are
 * derived from the identity: `tributary_` + the first 20 hex digits of
 * SHA-256(`{system identifier}/{database name}`), e.g. `tributary_3f9c0a51d2e87b4460aa`, for the
 * publication, and for the slot that name + `_` + the deployment's 12 hex digits
 * (`deployment-slots.ts`), e.g. `tributary_3f9c0a51d2e87b4460aa_5be01c9d7a32` (43 characters):
 * a slot keeps one position, so each deployment reading the database needs its own. A deployment
 * that read CDC before deployments had their part keeps the slot name without it. A source may set
 * its own names (`setCdcSource(slotName:, publicationName:)`), e.g. to keep a slot made elsewhere.
 */
import { createHash } from 'node:crypto';
import { identityKey, type DatabaseIdentity } from '../../../db/database-identity.ts';

/** Defined with the database connections (the outbox keys its tables by them too). */
export { identifyDatabase, identityKey, type DatabaseIdentity } from '../../../db/database-identity.ts';

export interface ReplicationNames {
  readonly slotName: string;
  readonly publicationName: string;
}


/**
 * The slot and publication of a database whose source sets no names of its own: with
 * `deploymentTag` (12 hex digits, `deployment-slots.ts`), the slot is that deployment's; without,
 * the name every deployment used before (the publication's).
 */
export function defaultReplicationNames(identity: DatabaseIdentity, deploymentTag?: string): ReplicationNames {
  const name = `tributary_${createHash('sha256').update(identityKey(identity)).digest('hex').slice(0, 20)}`;
  return { slotName: deploymentTag === undefined ? name : `${name}_${deploymentTag}`, publicationName: name };
}

/** The publication a reader of the database streams when its source names none (an outbox's reader's). */
export const defaultPublicationName = (identity: DatabaseIdentity): string => defaultReplicationNames(identity).publicationName;
