/**
 * `listPage`, the page of `documents`: at most `first` documents and at most `maxBytes` of their
 * data, read in chunks of the service's listing. The service here is a sorted list in memory that
 * records what it was asked.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_DOCUMENT_BYTES, listPage, type DocumentService, type ListOptions, type SyncDocument } from '../../src/pipeline/sync/documents.ts';

const SCOPE = { app: 'app', env: 'env', tenant: undefined };

/** Documents `d00`… whose data is `{"t":"…"}` of exactly `sizes[i]` bytes of JSON (at least 8). */
function service(sizes: readonly number[]): Pick<DocumentService, 'list'> & { readonly asked: ListOptions[] } {
  const at = new Date(0);
  const documents: SyncDocument[] = sizes.map((size, i) => ({
    service: 's',
    id: `d${String(i).padStart(2, '0')}`,
    revision: 1,
    data: { t: 'x'.repeat(size - 8) },
    createdAt: at,
    updatedAt: at,
  }));
  const asked: ListOptions[] = [];
  return {
    asked,
    list: (_scope, _service, options) => {
      asked.push(options);
      const rest = documents.filter(({ id }) => options.after === undefined || id > options.after);
      return Promise.resolve({ documents: rest.slice(0, options.first), hasNextPage: rest.length > options.first });
    },
  };
}

const ids = (page: { documents: readonly SyncDocument[] }) => page.documents.map(({ id }) => id);

describe('listPage', () => {
  it('ends the page before the document that would take its data over the cap, with hasNextPage', async () => {
    const documents = service([40, 40, 40, 40]);
    const page = await listPage(documents, SCOPE, 's', { first: 10, after: undefined }, 100);
    expect(ids(page)).toEqual(['d00', 'd01']);
    expect(page.hasNextPage).toBe(true);
    const next = await listPage(documents, SCOPE, 's', { first: 10, after: 'd01' }, 100);
    expect(ids(next)).toEqual(['d02', 'd03']);
    expect(next.hasNextPage).toBe(false);
  });

  it('takes a document that fills the cap exactly, and makes a page of one of a document larger than the cap', async () => {
    const documents = service([60, 40, 500, 10]);
    const pages = [];
    let after: string | undefined;
    do {
      pages.push(await listPage(documents, SCOPE, 's', { first: 10, after }, 100));
      after = pages.at(-1)!.documents.at(-1)?.id;
    } while (pages.at(-1)!.hasNextPage);
    expect(pages.map(ids)).toEqual([['d00', 'd01'], ['d02'], ['d03']]);
  });

  it('still ends a page at `first`', async () => {
    const page = await listPage(service([10, 10, 10]), SCOPE, 's', { first: 2, after: undefined }, 1000);
    expect(ids(page)).toEqual(['d00', 'd01']);
    expect(page.hasNextPage).toBe(true);
  });

  it('reads in chunks of as many documents of the largest size as the cap holds, and in one read without data', async () => {
    const documents = service(Array.from({ length: 40 }, () => 10));
    const page = await listPage(documents, SCOPE, 's', { first: 40, after: undefined });
    expect(page.documents).toHaveLength(40);
    expect(page.hasNextPage).toBe(false);
    expect(documents.asked.map(({ first }) => first)).toEqual([16, 16, 8]);
    expect(DEFAULT_MAX_DOCUMENT_BYTES * 16).toBe(4 * 1024 * 1024);

    const heads = service(Array.from({ length: 40 }, () => 10));
    expect((await listPage(heads, SCOPE, 's', { first: 40, after: undefined, withData: false })).documents).toHaveLength(40);
    expect(heads.asked).toEqual([{ first: 40, after: undefined, withData: false }]);
  });
});
