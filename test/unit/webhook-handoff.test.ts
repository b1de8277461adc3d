import { describe, expect, it } from 'vitest';
import type { Delivery } from '../../src/pipeline/webhooks/delivery-store.ts';
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

/** A handoff with a clock the test moves. */
function setup(options: { maxKept?: number; roomOf?: (endpointId: string) => number } = {}) {
  const clock = { now: 0 };
  const handoff = createDeliveryHandoff({ leaseMs: 20_000, maxKept: options.maxKept ?? 100, maxAgeMs: 5_000, roomOf: options.roomOf ?? (() => 10), now: () => clock.now });
  return { clock, handoff };
}

describe('webhook handoff (new deliveries from the routing tap to the BullMQ worker of the same process)', () => {
  it('keeps what the insert leased, names it with its lease for the job, and gives it to that job’s head only, once', () => {
    const { handoff } = setup();
    expect(handoff.intake.leaseMs).toBe(20_000);
    expect(handoff.intake.reserve('e1', 2)).toBe(2);
    const [one, two] = [stored('1'), stored('2')];
    expect(handoff.intake.start([one, two])).toEqual([
      { id: '1', endpointId: 'e1', lease: one.lease },
      { id: '2', endpointId: 'e1', lease: two.lease },
    ]);

    // A head named by another job (no lease, or another one) is not handed the copy: it is claimed.
    expect(handoff.take({ id: '1' })).toBeUndefined();
    expect(handoff.take({ id: '1', lease: two.lease! })).toBeUndefined();
    expect(handoff.take({ id: '1', lease: one.lease! })?.delivery).toBe(one);
    expect(handoff.take({ id: '1', lease: one.lease! })).toBeUndefined();
    expect(handoff.take({ id: '2', lease: two.lease! })).toEqual({ delivery: two, handedAt: 0 });
  });

  it('drops a delivery kept past its age — its job then claims it by id — and frees its room for new ones', () => {
    const { clock, handoff } = setup({ maxKept: 2 });
    handoff.intake.reserve('e1', 2);
    const [first, second] = handoff.intake.start([stored('1'), stored('2')]);
    expect(handoff.intake.reserve('e1', 1)).toBe(0);
    clock.now = 5_001;
    expect(handoff.take(first!)).toBeUndefined();
    // One never taken here (its job went to another process) is dropped when new ones come.
    expect(handoff.intake.reserve('e1', 5)).toBe(2);
    expect(handoff.take(second!)).toBeUndefined();
  });

  it('leases no more than it may keep, counting the places of inserts under way, and takes back the unused ones', () => {
    const { handoff } = setup({ maxKept: 4 });
    expect(handoff.intake.reserve('e1', 3)).toBe(3);
    expect(handoff.intake.reserve('e2', 5)).toBe(1);
    expect(handoff.intake.reserve('e3', 1)).toBe(0);
    // Of e1's three, one stored and leased; two not (not stored, or not their lane's head).
    handoff.intake.start([stored('1')]);
    handoff.intake.release('e1', 2);
    handoff.intake.release('e2', 1);
    expect(handoff.intake.reserve('e3', 5)).toBe(3);
  });

  it('keeps no more of an endpoint than it has room for in the worker, counting those kept and reserved', () => {
    const room = new Map([
      ['slow', 1],
      ['busy', 0],
    ]);
    const { handoff } = setup({ roomOf: (endpointId) => room.get(endpointId) ?? 10 });
    expect(handoff.intake.reserve('slow', 5)).toBe(1);
    expect(handoff.intake.reserve('busy', 5)).toBe(0);
    const [head] = handoff.intake.start([stored('1', 'slow')]);
    // Kept, not taken yet: the slow endpoint's one place is spoken for; another endpoint is not held up.
    expect(handoff.intake.reserve('slow', 1)).toBe(0);
    expect(handoff.intake.reserve('fast', 3)).toBe(3);
    // Taken by its job (the worker's room now counts it), or given back unused: room again.
    expect(handoff.take(head!)).toBeDefined();
    expect(handoff.intake.reserve('slow', 1)).toBe(1);
    handoff.intake.release('slow', 1);
    expect(handoff.intake.reserve('slow', 1)).toBe(1);
  });

  it('keeps no more what could not be queued, and returns it for its lease to be given back — but not one its job took already', () => {
    const { handoff } = setup({ maxKept: 3 });
    handoff.intake.reserve('e1', 3);
    const [one, two, three] = [stored('1'), stored('2'), stored('3')];
    const heads = handoff.intake.start([one, two, three]);
    // The job came and took the first before its add was reported failed (the add went through): it is being sent.
    expect(handoff.take(heads[0]!)?.delivery).toBe(one);
    // A head named with another lease (a later insert's, say) is not this delivery's: left alone.
    expect(handoff.intake.unscheduled([heads[0]!, heads[1]!, { ...heads[2]!, lease: 'another' }])).toEqual([two]);
    expect(handoff.take(heads[1]!)).toBeUndefined();
    expect(handoff.intake.unscheduled([heads[2]!])).toEqual([three]);
    // Their places are free again.
    expect(handoff.intake.reserve('e1', 5)).toBe(3);
  });

  it('keeps nothing once closed: it hands back what it kept, and what is stored after goes to its job alone', () => {
    const { handoff } = setup();
    handoff.intake.reserve('e1', 2);
    const kept = stored('1');
    handoff.intake.start([kept]);
    expect(handoff.close()).toEqual([kept]);
    // Reserved before the close, stored after it: named with its lease, not kept.
    const [head] = handoff.intake.start([stored('2')]);
    expect(head?.lease).toBeDefined();
    expect(handoff.take(head!)).toBeUndefined();
    expect(handoff.intake.reserve('e1', 1)).toBe(0);
    expect(handoff.close()).toEqual([]);
  });
});
