/**
 * Frames read back from Redis are checked, not cast: an event frame (the live channel) must carry
 * the fields every reader relies on (`isUnplacedEvent`), a channel frame a channel and an event.
 * A frame of another shape — another version's, a foreign publisher's — is not one: the readers
 * drop it where it is read rather than hand on an "event" without a scope that fails far away.
 */
import { describe, expect, it } from 'vitest';
import { isUnplacedEvent, type UnplacedEvent } from '../../src/pipeline/events/envelope.ts';
import { encodeCursor } from '../../src/pipeline/log/cursor.ts';
import { parseChannelFrame } from '../../src/pipeline/channels/redis-channel-transport.ts';
import { parseEventFrame } from '../../src/pipeline/pubsub/redis-bus.ts';

const event: UnplacedEvent = {
  id: 'evt_1',
  topic: 'orders.status',
  source: 'socket',
  type: 'shipped',
  payload: { orderId: 7 },
  metadata: { timestamp: 1_700_000_000_000, scope: { app: 'shop', env: 'prod', tenant: undefined } },
};

/** `event` with one field replaced (or removed, with `undefined`), through JSON as Redis holds it. */
function without(path: readonly string[], value?: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string, unknown>;
  const last = path.at(-1)!;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return copy;
}

describe('isUnplacedEvent', () => {
  it('accepts an event as the log writes it, with and without a tenant', () => {
    expect(isUnplacedEvent(JSON.parse(JSON.stringify(event)))).toBe(true);
    expect(isUnplacedEvent(without(['metadata', 'scope', 'tenant'], 'acme'))).toBe(true);
  });

  it.each([
    ['not an object', [1, 2, 3]],
    ['null', null],
    ['an object of another shape', { hello: 'world' }],
    ['no id', without(['id'])],
    ['a numeric topic', without(['topic'], 7)],
    ['no source', without(['source'])],
    ['no type', without(['type'])],
    ['no payload', without(['payload'])],
    ['no metadata', without(['metadata'])],
    ['no timestamp', without(['metadata', 'timestamp'])],
    ['a timestamp as text', without(['metadata', 'timestamp'], '2023-11-14')],
    ['no scope', without(['metadata', 'scope'])],
    ['a scope without app', without(['metadata', 'scope', 'app'])],
    ['a scope without env', without(['metadata', 'scope', 'env'])],
    ['a numeric tenant', without(['metadata', 'scope', 'tenant'], 5)],
  ])('refuses %s', (_name, value) => {
    expect(isUnplacedEvent(value)).toBe(false);
  });
});

describe('parseEventFrame (the live channel)', () => {
  it('gives the event of a frame, with its cursor', () => {
    expect(parseEventFrame(`E1\n1700000000000-0\n${JSON.stringify(event)}`)).toEqual({
      ...JSON.parse(JSON.stringify(event)),
      cursor: encodeCursor('1', '1700000000000-0'),
    });
  });

  it.each([
    ['JSON of another shape', 'E1\n1700000000000-0\n{"hello":"world"}'],
    ['an array', 'E1\n1700000000000-0\n[1,2,3]'],
    ['an event without its scope', `E1\n1700000000000-0\n${JSON.stringify(without(['metadata', 'scope']))}`],
    ['text that is not JSON', 'E1\n1700000000000-0\nnot json'],
    ['a frame without its header', `E${JSON.stringify(event)}`],
    ['a frame of another kind', `C${JSON.stringify(event)}`],
  ])('gives nothing for %s', (_name, frame) => {
    expect(parseEventFrame(frame)).toBeUndefined();
  });
});

describe('parseChannelFrame', () => {
  it('gives the message of a frame, with or without data', () => {
    expect(parseChannelFrame('C{"channel":"room","event":"typing","data":{"user":"ada"}}')).toEqual({ channel: 'room', event: 'typing', data: { user: 'ada' } });
    expect(parseChannelFrame('C{"channel":"room","event":"marker","data":null}')).toEqual({ channel: 'room', event: 'marker', data: null });
  });

  it.each([
    ['an array', 'C[1,2,3]'],
    ['JSON of another shape', 'C{"hello":"world"}'],
    ['a numeric event', 'C{"channel":"room","event":7}'],
    ['no channel', 'C{"event":"typing"}'],
    ['text that is not JSON', 'Cnot json'],
    ['a frame of another kind', 'E{"channel":"room","event":"typing"}'],
    ['not text', Buffer.from('C{"channel":"room","event":"typing"}')],
  ])('gives nothing for %s', (_name, frame) => {
    expect(parseChannelFrame(frame)).toBeUndefined();
  });
});
