import { describe, expect, it } from 'vitest';
import { createEndpointRoom } from '../../src/pipeline/webhooks/endpoint-room.ts';

describe('endpoint room', () => {
  it('admits up to an endpoint’s maximum, parks the rest, and hands parked ids back as places free up', () => {
    const room = createEndpointRoom((endpointId) => (endpointId === 'slow' ? 2 : 5));
    expect(['d1', 'd2', 'd3', 'd4'].map((id) => room.admit('slow', id))).toEqual([true, true, false, false]);
    expect(room.roomOf('slow')).toBe(0);
    expect(room.full()).toEqual(['slow']);
    expect(room.parking('slow')).toBe(true);
    // Another endpoint is not held up by the full one.
    expect(room.admit('fast', 'f1')).toBe(true);
    expect(room.roomOf('fast')).toBe(4);
    // One place freed: one parked id comes back, oldest first; it is admitted again by its claim.
    expect(room.leave('slow')).toEqual(['d3']);
    expect(room.admit('slow', 'd3')).toBe(true);
    expect(room.leave('slow')).toEqual(['d4']);
    expect(room.leave('slow')).toEqual([]);
    expect(room.parking('slow')).toBe(false);
    expect(room.full()).toEqual([]);
  });

  it('admits an endpoint whose maximum is not known yet (its gate decides)', () => {
    const room = createEndpointRoom(() => undefined);
    expect(Array.from({ length: 50 }, (_, n) => room.admit('new', `d${n}`)).every(Boolean)).toBe(true);
    expect(room.full()).toEqual([]);
  });

  it('hands a long parked queue back in order, each id once, across the cuts of the ids already taken', () => {
    const room = createEndpointRoom(() => 1);
    expect(room.admit('slow', 'first')).toBe(true);
    const parked = Array.from({ length: 5000 }, (_, n) => `d${n}`);
    expect(parked.map((id) => room.admit('slow', id)).some(Boolean)).toBe(false);
    const back: string[] = [];
    for (let turn = 0; turn < parked.length; turn += 1) {
      const again = room.leave('slow');
      expect(again).toHaveLength(1);
      back.push(...again);
      // Its claim admits it again: the endpoint is full once more.
      expect(room.admit('slow', again[0]!)).toBe(true);
      if (turn === 2999) room.admit('slow', 'late');
    }
    expect(back).toEqual(parked);
    // The one parked last, after the queue had been cut, comes after all the others.
    expect(room.leave('slow')).toEqual(['late']);
    expect(room.leave('slow')).toEqual([]);
    expect(room.parking('slow')).toBe(false);
  });

  it('holds a parked id once, however often it is named, and says which ids it holds', () => {
    const room = createEndpointRoom(() => 1);
    expect(room.admit('slow', 'first')).toBe(true);
    expect(room.admit('slow', 'd1')).toBe(false);
    // Named again (a second job for the same head): still parked once.
    expect(room.admit('slow', 'd1')).toBe(false);
    expect(room.holds('d1')).toBe(true);
    expect(room.holds('first')).toBe(false);
    expect(room.leave('slow')).toEqual(['d1']);
    expect(room.holds('d1')).toBe(false);
    expect(room.admit('slow', 'd1')).toBe(true);
    expect(room.leave('slow')).toEqual([]);
  });
});
