import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { generate, OUTPUTS } from '../../codegen.ts';

describe('codegen', () => {
  it('schema.graphql is the schema the code builds (run `npm run codegen` after a schema change)', async () => {
    const generated = await generate();
    expect(await readFile(OUTPUTS.schema, 'utf8')).toBe(generated.schema);
  });

  it('the typed documents match the schema and test/operations (run `npm run codegen`)', async () => {
    const generated = await generate();
    expect(await readFile(OUTPUTS.typedDocuments, 'utf8')).toBe(generated.typedDocuments);
  });

  it('the typed documents of the client package match the schema and its operations (run `npm run codegen`)', async () => {
    const generated = await generate();
    expect(await readFile(OUTPUTS.clientDocuments, 'utf8')).toBe(generated.clientDocuments);
  });
});
