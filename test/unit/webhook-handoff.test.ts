import { describe, expect, it } from 'vitest';
import type { Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
import { createEndpointRoom } from '../../src/pipeline/webhooks/endpoint-room.ts';
import { createDeliveryHandoff } from '../../src/pipeline/webhooks/webhook-handoff.ts';

const at = new Date(0);

const stored = (id: string, endpointId = 'e1'): Delivery => ({
  id,
  endpointId,
  eventId: `evt-${id}`,
  eventType: 'order.updated',
  topic: 'orders',
  lane: `event:${id}`,
  body: '{}',
  trigger: 'initial',
  eventTime: at,
  state: 'pending',
  attempts: 0,
  firstAttemptAt: null,
  nextAttemptAt: at,
  lastStatus: null,
  lastError: null,
  createdAt: at,
  finishedAt: null,
  lease: `2026-12-03 12:00:00.${id.padStart(6, '0')}+00`,
});

/** A handoff on a room of `max` places per endpoint, with a clock the test moves. */
function setup(options: { max?: number; maxKept?: number } = {}) {
  const clock = { now: 0 };
  const room = createEndpointRoom(() => options.max ?? 10);
  const handoff = createDeliveryHandoff({
    leaseMs: 20_000,
    maxKept: options.maxKept ?? 100,
    maxAgeMs: 5_000,
    reserve: (endpointId, wanted) => room.reserve(endpointId, wanted),
    leave: (endpointId) => void room.leave(endpointId),
    now: () => clock.now,
  });
  return { clock, room, handoff };
}

describe('webhook handoff (new deliveries from the routing tap to the BullMQ worker of the same process)', () => {
  it('keeps what the insert leased, names it with its lease for the job, and gives it to that job’s head only', () => {
    const { room, handoff } = setup();
    expect(handoff.intake.reserve('e1', 2)).toBe(2);
    const [one, two] = [stored('1'), stored('2')];
    expect(handoff.intake.start([one, two])).toEqual([
      { id: '1', endpointId: 'e1', lease: one.lease },
      { id: '2', endpointId: 'e1', lease: two.lease },
    ]);
    // The places stay taken while they are kept.
    expect(room.roomOf('e1')).toBe(8);

    // A head named by another job (no lease, or another one) is not handed the copy: it is claimed.
    expect(handoff.take({ id: '1' })).toBeUndefined();
    expect(handoff.take({ id: '1', lease: two.lease! })).toBeUndefined();
    expect(handoff.take({ id: '1', lease: one.lease! })?.delivery).toBe(one);
    // Taken once: its place is now the taker's.
    expect(handoff.take({ id: '1', lease: one.lease! })).toBeUndefined();
    expect(room.roomOf('e1')).toBe(8);
  });

  it('drops a delivery kept past its age and gives its place back; its job then claims it by id', () => {
    const { clock, room, handoff } = setup();
    handoff.intake.reserve('e1', 1);
    const [head] = handoff.intake.start([stored('1')]);
    clock.now = 5_001;
    expect(handoff.take(head!)).toBeUndefined();
    expect(room.roomOf('e1')).toBe(10);

    // One never taken here (its job went to another process) is dropped at the next insert.
    handoff.intake.reserve('e1', 1);
    handoff.intake.start([stored('2')]);
    clock.now = 20_000;
    expect(handoff.intake.reserve('e1', 1)).toBe(1);
    expect(room.roomOf('e1')).toBe(9);
  });

  it('leases no more than it may keep, nor beyond the endpoint’s room, and gives unused places back', () => {
    const { room, handoff } = setup({ max: 3, maxKept: 4 });
    expect(handoff.intake.reserve('e1', 5)).toBe(3);
    expect(handoff.intake.reserve('e2', 5)).toBe(1);
    expect(handoff.intake.reserve('e3', 1)).toBe(0);
    // Of e1's three, one stored and leased; two not (not stored, or not their lane's head).
    handoff.intake.start([stored('1')]);
    handoff.intake.release('e1', 2);
    handoff.intake.release('e2', 1);
    expect(room.roomOf('e1')).toBe(2);
    expect(room.roomOf('e2')).toBe(3);
    expect(handoff.intake.reserve('e3', 5)).toBe(3);
  });

  it('keeps nothing once closed: what it kept is dropped, and what is stored after goes to its job alone', () => {
    const { room, handoff } = setup();
    handoff.intake.reserve('e1', 2);
    handoff.intake.start([stored('1')]);
    handoff.close();
    expect(room.roomOf('e1')).toBe(9);
    // Reserved before the close, stored after it: named with its lease, not kept.
    const [head] = handoff.intake.start([stored('2')]);
    expect(head?.lease).toBeDefined();
    expect(room.roomOf('e1')).toBe(10);
    expect(handoff.take(head!)).toBeUndefined();
    expect(handoff.intake.reserve('e1', 1)).toBe(0);
  });
});
