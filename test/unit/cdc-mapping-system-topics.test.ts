/**
 * A mapping may not publish onto Tributary's own topics (`system.alerts`, `gateway.*`, …), which
 * subscribers and webhook endpoints trust: saving refuses it (`systemTopicProblems`, through
 * `streamConflicts`), and a templated topic a row fills in is set aside when it builds one.
 */
import { describe, expect, it } from 'vitest';
import { evaluateMapping, UnroutableRowError } from '../../src/pipeline/cdc/mapping/mapping-evaluate.ts';
import { streamConflicts, systemTopicProblems } from '../../src/pipeline/cdc/mapping/mapping-topics.ts';
import type { RowChange } from '../../src/pipeline/cdc/row-change.ts';
import { mapping } from '../helpers/cdc-mappings.ts';

const insert = (row: Record<string, unknown>): RowChange => ({
  operation: 'insert',
  table: { schema: 'crm', name: 'contacts' },
  keyColumns: ['id'],
  new: row,
  old: undefined,
  unchangedToastColumns: [],
  lsn: '00000000/016B3748',
  lsnIndex: 0,
});

describe("mappings onto Tributary's own topics", () => {
  it('refuses a topic or a model stream that is one of them, naming the field', () => {
    const refused: [Record<string, unknown>, string][] = [
      [{ topic: 'system.alerts' }, 'topic "system.alerts"'],
      [{ topic: 'gateway.connected' }, 'topic "gateway.connected"'],
      [{ topic: 'webhooks.endpoints' }, 'topic "webhooks.endpoints"'],
      // The fixed first segment of a template already makes every topic it builds one of them.
      [{ topic: 'system.{$row.status}' }, 'topic "system.{$row.status}"'],
      [{ module: 'system', model: 'alerts', topic: 'crm.contact-events' }, 'module "system": the model stream system.alerts'],
      [{ module: 'analytics', model: 'minutes', topic: 'crm.contact-events' }, 'module "analytics" with model "minutes": the model stream analytics.minutes'],
      // Sync documents' topics: a row there would pass for a document's change.
      [{ topic: 'sync.notes.updated' }, 'topic "sync.notes.updated"'],
      [{ topic: 'sync.{$row.status}' }, 'topic "sync.{$row.status}"'],
      [{ module: 'sync', model: 'notes', topic: 'crm.contact-events' }, 'module "sync": the model stream sync.notes'],
    ];
    for (const [overrides, message] of refused) {
      const problems = streamConflicts(mapping(overrides), []);
      expect(problems, JSON.stringify(overrides)).toHaveLength(1);
      expect(problems[0]).toContain(message);
      expect(problems[0]).toContain("is one of Tributary's own topics");
    }
  });

  it('accepts topics and model streams that only look alike', () => {
    for (const overrides of [
      { topic: 'crm.system.alerts' },
      { topic: 'systems.alerts' },
      { topic: 'webhooks.{$row.status}' },
      { topic: 'crm.{$row.status}' },
      { module: 'webhooks', model: 'contacts', topic: 'crm.contact-events' },
    ]) {
      expect(systemTopicProblems(mapping(overrides)), JSON.stringify(overrides)).toEqual([]);
    }
  });

  it("sets aside a row whose templated topic builds one of Tributary's own, and routes the others", () => {
    const templated = mapping({ topic: '{$row.status}.alerts' });
    expect(evaluateMapping(templated, insert({ id: 1, status: 'crm' }))?.topic).toBe('crm.alerts');
    const forged = (() => {
      try {
        return evaluateMapping(templated, insert({ id: 2, status: 'system' }));
      } catch (error) {
        return error;
      }
    })();
    expect(forged).toBeInstanceOf(UnroutableRowError);
    expect(forged).toMatchObject({ reason: 'topic-invalid', mapping: 'contacts' });
    expect((forged as Error).message).toContain("one of Tributary's own topics");
    expect(() => evaluateMapping(templated, insert({ id: 3, status: 'sync' }))).toThrow(/sync documents topic/);
  });

  it('routes nothing of a mapping stored before saving refused it', () => {
    const stored = { ...mapping(), module: 'system', model: 'alerts' };
    expect(() => evaluateMapping(stored, insert({ id: 1, status: 'crm' }))).toThrow(UnroutableRowError);
    const storedTopic = { ...mapping(), topic: 'system.alerts' };
    expect(() => evaluateMapping(storedTopic, insert({ id: 1, status: 'crm' }))).toThrow(/one of Tributary's own topics/);
  });
});
