/**
 * The outbox event's rules, one by one (outbox-rules.ts, repeating the server's
 * src/pipeline/outbox/outbox-row.ts): what Tributary would set aside as dead or Postgres would
 * refuse throws an InvalidOutboxEventError naming the field, and enqueueOutboxEvent sends nothing.
 */
import { describe, expect, it } from 'vitest';
import {
  enqueueOutboxEvent,
  InvalidOutboxEventError,
  MAX_PAYLOAD_DEPTH,
  validateOutboxEvent,
  type OutboxEventFields,
  type OutboxQueryable,
} from '../../src/outbox.ts';

const valid = { topic: 'orders.paid', type: 'order.paid', payload: { orderId: 42 } } as const;

/** The error `validateOutboxEvent` throws for `event`, or a failure when it throws none. */
function refusal(event: OutboxEventFields, maxPayloadBytes?: number): InvalidOutboxEventError {
  try {
    validateOutboxEvent(event, maxPayloadBytes);
  } catch (error) {
    if (error instanceof InvalidOutboxEventError) return error;
    throw error;
  }
  throw new Error(`accepted: ${JSON.stringify(event).slice(0, 200)}`);
}

/** An object nested `levels` deep, the outer one level 1. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let level = 1; level < levels; level += 1) value = { d: value };
  return value;
}

describe('outbox event rules', () => {
  it('accepts a valid event and returns the JSON text to write', () => {
    expect(validateOutboxEvent({ ...valid, tenant: 'acme', entity: 'order:42', table: 'orders', operation: 'update' })).toBe('{"orderId":42}');
    // JavaScript callers' null is "left out", as the INSERT writes it.
    expect(validateOutboxEvent({ ...valid, tenant: null, entity: null, table: null, operation: null })).toBe('{"orderId":42}');
  });

  it.each([
    ['orders paid!', 'INVALID_NAME'],
    ['', 'INVALID_NAME'],
    ['.orders', 'INVALID_NAME'],
    ['orders.*', 'INVALID_NAME'],
    ['a'.repeat(201), 'INVALID_NAME'],
    [42, 'INVALID_NAME'],
    ['system.alerts', 'RESERVED_TOPIC'],
    ['gateway.sockets', 'RESERVED_TOPIC'],
    ['sync.notes.n1', 'RESERVED_TOPIC'],
    ['webhooks.endpoints', 'RESERVED_TOPIC'],
    ['webhooks.test', 'RESERVED_TOPIC'],
    ['analytics.minutes', 'RESERVED_TOPIC'],
  ])('refuses the topic %j (%s)', (topic, code) => {
    const error = refusal({ ...valid, topic });
    expect(error).toMatchObject({ field: 'topic', code, path: undefined });
    expect(error.message).toMatch(/^Invalid outbox event: topic /);
  });

  it('accepts topics next to the reserved ones, and a 200-character name', () => {
    for (const topic of ['webhooks.contacts', 'systems.x', 'analytics.minutes2', 'syncs', 'a'.repeat(200), 'Orders_1:eu/west-2']) {
      expect(validateOutboxEvent({ ...valid, topic })).toBe('{"orderId":42}');
    }
  });

  it.each([['order paid'], [''], ['a'.repeat(201)], [undefined]])('refuses the type %j', (type) => {
    expect(refusal({ ...valid, type })).toMatchObject({ field: 'type', code: 'INVALID_NAME' });
  });

  it.each([
    ['an array', [1, 2], 'INVALID_VALUE', /not an array/],
    ['null', null, 'INVALID_VALUE', /not null/],
    ['a string', 'hello', 'INVALID_VALUE', /not a string/],
    ['undefined', undefined, 'INVALID_VALUE', /JSON.stringify wrote nothing for undefined/],
    ['an object whose toJSON gives an array', { toJSON: () => [1] }, 'INVALID_VALUE', /not an array/],
    ['a BigInt', { total: 10n }, 'NOT_JSON', /BigInt/],
  ])('refuses a payload that is %s', (_label, payload, code, message) => {
    const error = refusal({ ...valid, payload });
    expect(error).toMatchObject({ field: 'payload', code });
    expect(error.message).toMatch(message);
  });

  it('refuses a cyclic payload as not JSON, with the cause', () => {
    const payload: Record<string, unknown> = { a: 1 };
    payload['self'] = payload;
    const error = refusal({ ...valid, payload });
    expect(error).toMatchObject({ field: 'payload', code: 'NOT_JSON' });
    expect(error.cause).toBeInstanceOf(TypeError);
  });

  it('checks the payload as written: a Date is its string, undefined members are left out', () => {
    expect(validateOutboxEvent({ ...valid, payload: { at: new Date(0), gone: undefined } })).toBe('{"at":"1970-01-01T00:00:00.000Z"}');
  });

  it(`accepts a payload nested ${MAX_PAYLOAD_DEPTH} levels deep and refuses one more, with its path`, () => {
    expect(() => validateOutboxEvent({ ...valid, payload: nested(MAX_PAYLOAD_DEPTH) })).not.toThrow();
    const error = refusal({ ...valid, payload: nested(MAX_PAYLOAD_DEPTH + 1) });
    expect(error).toMatchObject({ field: 'payload', code: 'TOO_DEEP', path: `${'/d'.repeat(MAX_PAYLOAD_DEPTH)}` });
    // Arrays count as levels too.
    const arrays = refusal({ ...valid, payload: { a: JSON.parse('['.repeat(MAX_PAYLOAD_DEPTH) + ']'.repeat(MAX_PAYLOAD_DEPTH)) as unknown } });
    expect(arrays).toMatchObject({ code: 'TOO_DEEP' });
  });

  it('refuses a payload too deep for JSON.stringify itself as too deep', () => {
    let deep: unknown[] = [];
    for (let level = 0; level < 200_000; level += 1) deep = [deep];
    expect(refusal({ ...valid, payload: { deep } })).toMatchObject({ field: 'payload', code: 'TOO_DEEP' });
  });

  it('measures the payload in UTF-8 bytes of its JSON, against 64 KiB by default or maxPayloadBytes', () => {
    const at = (bytes: number) => ({ ...valid, payload: { a: 'x'.repeat(bytes - '{"a":""}'.length) } });
    expect(() => validateOutboxEvent(at(65_536))).not.toThrow();
    expect(refusal(at(65_537))).toMatchObject({ field: 'payload', code: 'TOO_LARGE', message: expect.stringContaining('65537 bytes of JSON; the limit is 65536') as unknown });
    expect(() => validateOutboxEvent(at(1_000), 1_000)).not.toThrow();
    expect(refusal(at(1_001), 1_000)).toMatchObject({ code: 'TOO_LARGE' });
    // 'é' is 2 bytes: 500 of them are 1,008 bytes of JSON.
    expect(refusal({ ...valid, payload: { a: 'é'.repeat(500) } }, 1_000)).toMatchObject({ code: 'TOO_LARGE', message: expect.stringContaining('1008 bytes') as unknown });
  });

  it.each([
    ['a NUL in a value', { note: 'pasted\u0000text' }, '/note', /NUL character \(U\+0000\)/],
    ['a NUL in a key', { ['a\u0000']: 1 }, '/a\u0000', /key at .* NUL/],
    ['a string cut inside an emoji', { items: [{ note: '😀'.slice(0, 1) }] }, '/items/0/note', /U\+D83D at index 0: a string cut inside an emoji/],
    ['a low surrogate alone', { a: 'x\ude00' }, '/a', /U\+DE00 at index 1/],
    ['a lone surrogate in a key', { deep: { ['k\ud800']: true } }, '/deep/k\ud800', /key at/],
    ['escaped pointer keys', { ['a/b']: { ['c~d']: 'bad\u0000' } }, '/a~1b/c~0d', /string at/],
  ])('refuses %s in the payload, with its JSON Pointer', (_label, payload, path, message) => {
    const error = refusal({ ...valid, payload });
    expect(error).toMatchObject({ field: 'payload', code: 'UNSTORABLE_TEXT', path });
    expect(error.message).toMatch(message);
  });

  it('accepts whole emoji, other control characters and escapes that only look like NUL', () => {
    expect(() => validateOutboxEvent({ ...valid, payload: { ['😀']: '👍🏽 done', tab: 'a\tb\u0001', text: '\\u0000 and \\ud800' } })).not.toThrow();
  });

  it.each([
    ['an empty tenant', { tenant: '' }, 'tenant', 'EMPTY'],
    ['a tenant over 200 characters', { tenant: 't'.repeat(201) }, 'tenant', 'TOO_LARGE'],
    ['a tenant with a control character', { tenant: 'acme\n' }, 'tenant', 'CONTROL_CHARACTER'],
    ['a tenant with a NUL', { tenant: 'acme\u0000' }, 'tenant', 'CONTROL_CHARACTER'],
    ['a tenant with a C1 control character', { tenant: 'acme\u0085' }, 'tenant', 'CONTROL_CHARACTER'],
    ['a tenant with a lone surrogate', { tenant: 'acme\ud800' }, 'tenant', 'UNSTORABLE_TEXT'],
    ['a number as tenant', { tenant: 7 }, 'tenant', 'INVALID_VALUE'],
    ['an entity over 1,024 bytes', { entity: '注'.repeat(342) }, 'entity', 'TOO_LARGE'],
    ['an entity with a control character', { entity: 'order:\u001b[31m' }, 'entity', 'CONTROL_CHARACTER'],
    ['an entity with a lone surrogate', { entity: 'order:\udc00' }, 'entity', 'UNSTORABLE_TEXT'],
    ['an object as entity', { entity: { id: 1 } }, 'entity', 'INVALID_VALUE'],
    ['a table with a NUL', { table: 'orders\u0000' }, 'table', 'UNSTORABLE_TEXT'],
    ['a number as table', { table: 1 }, 'table', 'INVALID_VALUE'],
    ['an unknown operation', { operation: 'upsert' }, 'operation', 'INVALID_VALUE'],
    ['an upper-case operation', { operation: 'INSERT' }, 'operation', 'INVALID_VALUE'],
  ])('refuses %s', (_label, fields, field, code) => {
    const error = refusal({ ...valid, ...fields });
    expect(error).toMatchObject({ field, code, name: 'InvalidOutboxEventError' });
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain(field);
  });

  it('accepts a tenant of 200 characters and an entity of 1,024 bytes', () => {
    expect(() => validateOutboxEvent({ ...valid, tenant: 't'.repeat(200), entity: `${'注'.repeat(341)}x` })).not.toThrow();
  });

  it('quotes a long or unprintable value in the message, shortened and escaped', () => {
    expect(refusal({ ...valid, topic: `bad topic\n${'x'.repeat(200)}` }).message).toMatch(/^Invalid outbox event: topic "bad topic\\nx{70}…" is not a valid name/);
  });
});

describe('enqueueOutboxEvent', () => {
  /** A client that records what reaches it and answers an INSERT with id 1. */
  function recordingClient(): OutboxQueryable & { readonly sent: unknown[][] } {
    const sent: unknown[][] = [];
    return {
      sent,
      query: (_text: string, values: unknown[]) => {
        sent.push(values);
        return Promise.resolve({ rows: [{ id: '1' }] });
      },
    };
  }

  it('sends nothing for an event it refuses', async () => {
    const client = recordingClient();
    await expect(enqueueOutboxEvent(client, { ...valid, topic: 'system.alerts' })).rejects.toBeInstanceOf(InvalidOutboxEventError);
    await expect(enqueueOutboxEvent(client, { ...valid, payload: { note: 'x\u0000' } })).rejects.toMatchObject({ code: 'UNSTORABLE_TEXT', path: '/note' });
    expect(client.sent).toEqual([]);
  });

  it('writes the JSON text it checked, and takes maxPayloadBytes', async () => {
    const client = recordingClient();
    expect(await enqueueOutboxEvent(client, { ...valid, payload: { a: 'x'.repeat(100) } }, { maxPayloadBytes: 108 })).toBe('1');
    await expect(enqueueOutboxEvent(client, { ...valid, payload: { a: 'x'.repeat(101) } }, { maxPayloadBytes: 108 })).rejects.toMatchObject({ code: 'TOO_LARGE' });
    expect(client.sent).toEqual([['orders.paid', 'order.paid', `{"a":"${'x'.repeat(100)}"}`, null, null, null, null]]);
  });

  it('refuses a maxPayloadBytes that is not a positive integer', async () => {
    for (const maxPayloadBytes of [0, -1, 1.5, Number.NaN, Infinity]) {
      await expect(enqueueOutboxEvent(recordingClient(), valid, { maxPayloadBytes })).rejects.toThrow(/Invalid maxPayloadBytes/);
    }
  });
});
