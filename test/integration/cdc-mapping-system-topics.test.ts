/**
 * `saveCdcMapping` refuses a mapping that would publish onto Tributary's own topics
 * (`system.alerts`, …): by its topic, or by its model stream `{module}.{model}`.
 */
import { describe, expect, it } from 'vitest';
import { CONTACTS_MAPPING, errorOf, gql, saveMapping, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';

describe("CDC mappings onto Tributary's own topics", () => {
  it('refuses with BAD_USER_INPUT naming the topic or the module, and saves nothing', async () => {
    const setup = await setUpCdc();
    const refused: [Record<string, unknown>, string][] = [
      [{ ...CONTACTS_MAPPING, name: 'forge-topic', topic: 'system.alerts' }, 'topic "system.alerts" is one of Tributary\'s own topics'],
      [{ ...CONTACTS_MAPPING, name: 'forge-template', topic: 'system.{$row.status}' }, 'topic "system.{$row.status}" is one of Tributary\'s own topics'],
      [{ ...CONTACTS_MAPPING, name: 'forge-stream', module: 'system', model: 'alerts' }, 'module "system": the model stream system.alerts is one of Tributary\'s own topics'],
    ];
    for (const [mapping, message] of refused) {
      const error = errorOf(await saveMapping(setup, mapping));
      expect(error?.extensions, JSON.stringify(mapping)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mapping' });
      expect(error?.message).toContain(message);
    }
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const listed = await gql(setup.server, setup.admin, '{ cdcMappings { name } }');
    expect(listed.errors, JSON.stringify(listed.errors)).toBeUndefined();
    expect(listed.data?.['cdcMappings']).toEqual([{ name: 'contacts' }]);
  });
});
