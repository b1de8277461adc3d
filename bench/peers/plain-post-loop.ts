/**
 * The physical limit of the `webhooks` drain — not a delivery engine but the floor under one: a
 * plain loop of keep-alive HTTP POSTs to the receiver, `concurrency` requests in flight (undici,
 * one connection each), the same body Tributary delivers, nothing stored, signed or retried. What
 * it reaches is what this machine's loopback, the receiver and one Node process can carry.
 */
import { Agent, request } from 'undici';

export interface PostLoopOptions {
  /** The receiver. */
  readonly url: string;
  /** Requests in flight at once (and connections kept alive). */
  readonly concurrency: number;
  /** The loop posts events `firstSeq … firstSeq + count − 1`, each once. */
  readonly firstSeq: number;
  readonly count: number;
  /** The body of event `seq`, sent at `sentAt` (`clockMillis()`). */
  readonly body: (seq: number, sentAt: number) => string;
  /** The clock `sentAt` is read from. */
  readonly now: () => number;
}

export interface PostLoopResult {
  /** Requests answered with another status than 2xx, or not answered. */
  readonly failures: number;
  readonly firstFailure: string | undefined;
}

export async function runPostLoop(options: PostLoopOptions): Promise<PostLoopResult> {
  const agent = new Agent({ connections: options.concurrency });
  const end = options.firstSeq + options.count;
  let next = options.firstSeq;
  let failures = 0;
  let firstFailure: string | undefined;
  const fail = (why: string) => {
    failures += 1;
    firstFailure ??= why;
  };
  const worker = async () => {
    while (next < end) {
      const seq = next;
      next += 1;
      try {
        const response = await request(options.url, {
          dispatcher: agent,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: options.body(seq, options.now()),
        });
        await response.body.dump();
        if (response.statusCode < 200 || response.statusCode >= 300) fail(`HTTP ${response.statusCode}`);
      } catch (error) {
        fail(error instanceof Error ? error.message : String(error));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    await agent.close();
  }
  return { failures, firstFailure };
}
