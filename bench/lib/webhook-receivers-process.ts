/**
 * The parent's handle on the webhook receivers (`webhook-receivers.ts`) in their own process, so
 * what receiving costs is neither the sender's CPU nor the runner's, and can be reported on its own.
 */
import { fork } from 'node:child_process';
import { childStopper, createIpcRequester } from './child-ipc.ts';
import type { LateReport, ReceiverReply, ReceiverReport, ReceiverRequest, WarmUp } from './webhook-receiver-protocol.ts';

export interface WebhookReceivers {
  readonly pid: number;
  /** Starts receivers until there are `count`; resolves with every receiver's URL, in order. */
  listen(count: number): Promise<readonly string[]>;
  /**
   * Starts a step: receivers 0…`receivers`−1 are each to get every event `firstSeq … firstSeq +
   * count − 1`; with `spread`, event `seq` goes to receiver `seq % receivers` only. The first
   * `warmup` deliveries to arrive (any events) warm the sender up: see `warmed`. `sender` names
   * who sends the step's events, for `late`. Sequence numbers are the run's: each step's are above
   * every earlier step's.
   */
  expect(
    firstSeq: number,
    count: number,
    receivers: number,
    options?: { readonly spread?: boolean; readonly warmup?: number; readonly sender?: string },
  ): Promise<void>;
  /** Waits (at most `timeoutMs`, else rejects) until the step's warm-up deliveries are in; when that was, and the receivers' CPU until then. */
  warmed(timeoutMs: number): Promise<WarmUp>;
  /** Deliveries of the step received so far (an event once per receiver), and how many are expected. */
  progress(): Promise<{ received: number; expected: number }>;
  /**
   * Waits (at most `timeoutMs`) until the step is complete, then reports it; with `sent`, only
   * the step's first `sent` events are expected (the sender stopped there).
   */
  collect(timeoutMs: number, sent?: number): Promise<ReceiverReport>;
  /** Every step that got a copy after it was collected (a retry, a replay), by sender; and the run's stray requests. */
  late(): Promise<LateReport>;
  /** Closes the receivers and ends the process; kills it if it does not exit in time. Idempotent. */
  stop(): Promise<void>;
}

const RECEIVERS_SCRIPT = new URL('./webhook-receivers.ts', import.meta.url);

export function startWebhookReceivers(options: { readonly stopTimeoutMs?: number } = {}): WebhookReceivers {
  const child = fork(RECEIVERS_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = createIpcRequester<ReceiverRequest, ReceiverReply>(child, 'webhook receivers', (reply) => (reply.type === 'failed' ? reply.message : undefined));
  const expectReply = <T extends ReceiverReply['type']>(reply: ReceiverReply, type: T): Extract<ReceiverReply, { type: T }> => {
    if (reply.type !== type) throw new Error(`webhook receivers: expected ${type}, got ${reply.type}`);
    return reply as Extract<ReceiverReply, { type: T }>;
  };
  return {
    pid: child.pid ?? -1,
    async listen(count) {
      return expectReply(await ask({ type: 'listen', receivers: count }), 'listening').urls;
    },
    async expect(firstSeq, count, receivers, options = {}) {
      expectReply(
        await ask({
          type: 'expect',
          firstSeq,
          count,
          receivers,
          ...(options.spread === true && { spread: true }),
          ...(options.warmup !== undefined && { warmup: options.warmup }),
          ...(options.sender !== undefined && { sender: options.sender }),
        }),
        'expecting',
      );
    },
    async warmed(timeoutMs) {
      return expectReply(await ask({ type: 'warmed', timeoutMs }), 'warmed').warm;
    },
    async progress() {
      const { received, expected } = expectReply(await ask({ type: 'progress' }), 'progress');
      return { received, expected };
    },
    async collect(timeoutMs, sent) {
      return expectReply(await ask({ type: 'collect', timeoutMs, ...(sent !== undefined && { sent }) }), 'collected').report;
    },
    async late() {
      return expectReply(await ask({ type: 'late' }), 'late').late;
    },
    stop: childStopper(child, () => ask({ type: 'close' }), options.stopTimeoutMs ?? 10_000),
  };
}
