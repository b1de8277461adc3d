/** The outbox table name check (server and client helper) and the DDL text. */
import { describe, expect, it } from 'vitest';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { ErrorCode, TributaryError } from '../../src/errors.ts';
import { outboxTable, outboxTableDdl } from '../../src/pipeline/outbox/outbox-sql.ts';

const refused = ['', 'Event_Outbox', 'a.b.c', '1outbox', 'outbox;drop table x', 'out box', '"outbox"', 'a.', '.a', 'x'.repeat(64), 'ö'];

describe('the outbox table name', () => {
  it.each(['event_outbox', 'app.event_outbox', '_x', 'x'.repeat(63)])('accepts %s and quotes each part', (name) => {
    const table = outboxTable(name);
    expect(table.name).toBe(name);
    expect(table.sql).toBe(name.split('.').map((part) => `"${part}"`).join('.'));
  });

  it.each(refused)('refuses %j with BAD_USER_INPUT naming the field table', (name) => {
    let caught: unknown;
    try {
      outboxTable(name);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TributaryError);
    expect(caught).toMatchObject({ code: ErrorCode.BAD_USER_INPUT, details: { field: 'table' } });
  });

  it.each(refused)('the client helper refuses %j before any query', async (name) => {
    const queries: string[] = [];
    const client = { query: (text: string) => (queries.push(text), Promise.resolve({ rows: [{ id: '1' }] })) };
    await expect(enqueueOutboxEvent(client, { topic: 't', type: 'x', payload: {} }, { table: name })).rejects.toThrow(TypeError);
    expect(queries).toEqual([]);
  });
});

describe('the outbox DDL', () => {
  const ddl = outboxTableDdl(outboxTable('app.event_outbox'));

  it('creates the table with the contract columns, idempotently', () => {
    expect(ddl).toContain(`IF to_regclass('"app"."event_outbox"') IS NULL THEN`);
    expect(ddl).toContain('CREATE TABLE IF NOT EXISTS "app"."event_outbox" (');
    for (const column of [
      'id bigserial PRIMARY KEY',
      'topic text NOT NULL',
      'event_type text NOT NULL',
      'payload jsonb NOT NULL',
      'tenant text',
      'entity text',
      'table_name text',
      "operation text CHECK (operation IS NULL OR operation IN ('insert', 'update', 'delete'))",
      'created_at timestamptz NOT NULL DEFAULT now()',
      'processed_at timestamptz',
      'dead_reason text',
    ]) {
      expect(ddl).toContain(column);
    }
  });

  it('indexes pending rows by id and processed rows by age', () => {
    expect(ddl).toContain('CREATE INDEX IF NOT EXISTS "event_outbox_pending_idx" ON "app"."event_outbox" (id) WHERE processed_at IS NULL;');
    expect(ddl).toContain('CREATE INDEX IF NOT EXISTS "event_outbox_processed_idx" ON "app"."event_outbox" (processed_at);');
  });

  it('indexes dead rows only, for the status’s count (a scan would read every processed row the retention keeps)', () => {
    expect(ddl).toContain('CREATE INDEX IF NOT EXISTS "event_outbox_dead_idx" ON "app"."event_outbox" (id) WHERE dead_reason IS NOT NULL;');
  });

  it('builds every index only with a new table, never on an existing one (a plain build blocks its INSERTs)', () => {
    // Inside the block that runs only when the table does not exist: between its IF and END IF.
    const block = /IF to_regclass\('"app"\."event_outbox"'\) IS NULL THEN\n([\s\S]*?)\n\s*END IF;/.exec(ddl)?.[1] ?? '';
    expect(block).toContain('CREATE TABLE IF NOT EXISTS "app"."event_outbox" (');
    for (const index of ['"event_outbox_dead_idx"', '"event_outbox_pending_idx"', '"event_outbox_processed_idx"']) {
      expect(block).toContain(index);
      expect(ddl.split(index)).toHaveLength(2);
    }
    // Nothing after the block but its end.
    expect(ddl).toMatch(/END IF;\nEND\n\$outbox\$;\n$/);
    expect(ddl).toMatch(/^DO \$outbox\$\nBEGIN\n/);
  });
});
