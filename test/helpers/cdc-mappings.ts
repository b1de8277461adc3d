import type { DomainMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';
import { parseMapping } from '../../src/pipeline/cdc/mapping/mapping.ts';

/** A valid mapping of `crm.contacts` (model `contacts` of module `crm`), for unit tests. */
export const BASE_MAPPING = {
  name: 'contacts',
  table: 'crm.contacts',
  events: ['insert', 'update', 'delete'],
  topic: 'crm.contacts',
  module: 'crm',
  model: 'contacts',
};

/** `BASE_MAPPING` with `overrides`, parsed. */
export function mapping(overrides: Record<string, unknown> = {}): DomainMapping {
  return parseMapping({ ...BASE_MAPPING, ...overrides });
}
