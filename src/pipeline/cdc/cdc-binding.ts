import type { TableShape } from './mapping/mapping-check.ts';
import type { DomainMapping } from './mapping/mapping.ts';

/** One environment's mappings on a source database, with the catalog entries of their tables (`cdc-source.ts`). */
export interface CdcBinding {
  readonly scope: { readonly app: string; readonly env: string };
  readonly mappings: readonly DomainMapping[];
  /** Catalog entries of the mapped tables, by `schema.table`. */
  readonly tables: ReadonlyMap<string, TableShape>;
  /**
   * Mapped tables (`schema.table`) whose entry could not be read: a change of one fails its chunk,
   * received again once the entry is there, rather than being keyed by a guess. @default none
   */
  readonly unread?: ReadonlySet<string>;
}
