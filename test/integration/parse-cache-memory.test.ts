/**
 * What the parse caches may keep. Documents are cached by their text: a request's whole text
 * would stay in memory for as long as its entry does. Requests refused as unauthenticated leave
 * nothing (they are refused before parsing), and a long document of a verified caller — a
 * megabyte of comment or string is three tokens, within every complexity limit — runs without
 * being kept. Measured on the heap after forced collections: ~1 MB per request would show as
 * hundreds of MiB.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { expect, it } from 'vitest';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

const PADDING = 'x'.repeat(1_000_000);

async function post(url: string, query: string, authorization?: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization && { authorization }) },
    body: JSON.stringify({ query }),
  });
  await response.arrayBuffer();
  return response.status;
}

it('keeps neither the documents of refused requests nor long documents of verified callers', async () => {
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
  const authorization = `Bearer ${await signHs256()}`;
  await post(server.graphqlUrl, '{ __typename }', authorization);
  const before = heapMiB();
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) {
    // A valid document, a syntax error (kept in the error cache), with and without a token.
    statuses.push(await post(server.graphqlUrl, `# ${i} ${PADDING}\n{ __typename }`));
    statuses.push(await post(server.graphqlUrl, `# ${i} ${PADDING}\n{ __typename `));
    statuses.push(await post(server.graphqlUrl, `# ${i} ${PADDING}\n{ __typename }`, authorization));
    statuses.push(await post(server.graphqlUrl, `# ${i} ${PADDING}\n{ __typename `, authorization));
  }
  const grown = heapMiB() - before;
  expect(new Set(statuses)).toEqual(new Set([401, 200]));
  // 80 requests of ~1 MB: kept, they would be ~80 MiB.
  expect(grown).toBeLessThan(30);
});
