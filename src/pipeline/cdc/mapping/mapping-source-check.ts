/**
 * Checking a mapping against the source database it will be read from, on save: its table's
 * catalog entry (`mapping-check.ts`: problems, and warnings of what is saved anyway), and whether
 * the source's publication streams the table's changes under the name the mapping matches —
 * pgoutput names a change by the table it is published as, so a table left out of a user's
 * publication, or a partitioned table whose partitions are published under their own names,
 * would be accepted and then never deliver.
 */
import type pg from 'pg';
import { identifyDatabase, type DatabaseIdentity } from '../wal/replication-names.ts';
import { publicationCoverage, type PublicationCoverage } from '../wal/replication-setup.ts';
import { checkMappingAgainstTable, checkMappingWarnings } from './mapping-check.ts';
import { mappingTable, type DomainMapping } from './mapping.ts';
import { quoteIdent } from './quote-ident.ts';
import { describeTable } from './table-catalog.ts';

/** The mapping checked against its source database. */
export interface SourceCheck {
  /** What would make it misbehave, each with its fix: save it only when this is empty. */
  readonly problems: readonly string[];
  /** What it will do that its admin may not expect (`checkMappingWarnings`): said, not refused. */
  readonly warnings: readonly string[];
}

/**
 * The mapping checked against the source `client` is connected to. `publicationOf` names the
 * publication its reader uses on that database.
 */
export async function checkSource(client: pg.ClientBase, mapping: DomainMapping, publicationOf: (identity: DatabaseIdentity) => string): Promise<SourceCheck> {
  const table = mappingTable(mapping);
  const shape = await describeTable(client, table);
  if (!shape) return { problems: [`table ${mapping.table} does not exist in the source database`], warnings: [] };
  const publicationName = publicationOf(await identifyDatabase(client));
  const coverage = await publicationCoverage(client, publicationName, table);
  return {
    problems: [...checkMappingAgainstTable(mapping, shape), ...publicationProblems(mapping, publicationName, coverage)],
    warnings: checkMappingWarnings(mapping, shape),
  };
}

/** Problems of a mapping whose table `coverage` describes in publication `publication`. */
export function publicationProblems(mapping: DomainMapping, publication: string, coverage: PublicationCoverage): string[] {
  // A missing publication is created by the reader FOR ALL TABLES, partitions under their root.
  if (!coverage.exists || coverage.published) return [];
  const ref = mappingTable(mapping);
  const name = `${ref.schema}.${ref.name}`;
  const undelivered = 'so none of its changes would be delivered';
  if (coverage.partitioned && !coverage.viaRoot) {
    return [
      `${name} is partitioned, and publication "${publication}" publishes its changes under each partition's name, ` +
        `which this mapping does not match, ${undelivered}. Fix: run \`ALTER PUBLICATION ${quoteIdent(publication)} SET (publish_via_partition_root = true);\``,
    ];
  }
  if (coverage.root !== null && coverage.viaRoot) {
    return [`${name} is a partition of ${coverage.root}, and publication "${publication}" publishes its changes as ${coverage.root}'s, ${undelivered}. Fix: map ${coverage.root}`];
  }
  return [
    `publication "${publication}" does not include ${name}, ${undelivered}. ` +
      `Fix: run \`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${quoteIdent(ref.schema)}.${quoteIdent(ref.name)};\``,
  ];
}

/** Always quoted: exact for any catalog name. */
