import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. The kernel picks it (listen on port 0),
 * then the listener is closed so the caller can bind it. Another process may take it in between;
 * on a test machine that race is rare enough to accept.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
  });
  if (address === null || typeof address === 'string') {
    throw new Error(`freePort: unexpected listener address ${String(address)}`);
  }
  return address.port;
}
