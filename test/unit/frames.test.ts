import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { textFrame } from '../../src/server/ws/frames.ts';

/** ws's frame parser: exported at run time, absent from its type definitions. */
interface FrameReceiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  write(chunk: Buffer): void;
}
const Receiver = (ws as unknown as { Receiver: new (options: { isServer: boolean }) => FrameReceiver }).Receiver;

/** Decodes frames with ws's own receiver, as a client would. */
function decode(frame: Buffer): string[] {
  const messages: string[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('message', (data, isBinary) => {
    expect(isBinary).toBe(false);
    messages.push(data.toString('utf8'));
  });
  receiver.write(frame);
  return messages;
}

describe('textFrame', () => {
  it.each([
    ['a 7-bit length', 50],
    ['the largest 7-bit length', 125 - 3],
    ['a 16-bit length', 200],
    ['the largest 16-bit length', 65_535 - 3],
    ['a 64-bit length', 70_000],
  ])('builds a frame with %s that a client decodes to the same text', (_name, size) => {
    const body = 'é'.repeat(Math.floor(size / 2)) + 'x'.repeat(size % 2);
    const frame = textFrame(Buffer.from('['), Buffer.from(body), Buffer.from(']'));
    expect(decode(frame)).toEqual([`[${body}]`]);
  });
});
