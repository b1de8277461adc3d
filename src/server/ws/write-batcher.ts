import type { Socket } from 'node:net';

/**
 * Batches socket writes per tick: the first write to a socket in a tick corks its TCP socket and
 * one `setImmediate` uncorks every corked socket, so all frames a tick produced for a socket
 * (a fan-out, a replay page) leave in one write instead of one syscall each.
 */
const corked = new Set<Socket>();
let scheduled = false;

function flush(): void {
  scheduled = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
}

export function corkForThisTick(raw: Socket): void {
  if (corked.has(raw)) return;
  raw.cork();
  corked.add(raw);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
