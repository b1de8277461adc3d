/**
 * Last-resort cleanup for servers a test process started: if the process exits without running
 * its teardown (a crashed worker, `process.exit()` in a test), these synchronous callbacks still
 * stop the servers and delete their directories. Normal teardown unregisters its callback first.
 * Signals that kill the process outright (SIGKILL) cannot be caught; nothing can help there.
 */
const callbacks = new Set<() => void>();
let installed = false;

export function onProcessExit(callback: () => void): () => void {
  if (!installed) {
    installed = true;
    process.once('exit', () => {
      for (const fn of callbacks) {
        try {
          fn();
        } catch {
          // best effort: keep cleaning up the others
        }
      }
      callbacks.clear();
    });
  }
  callbacks.add(callback);
  return () => {
    callbacks.delete(callback);
  };
}
