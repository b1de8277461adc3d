import { onTestFinished } from 'vitest';

/** Sets the process's time zone (`TZ`; a server started in the test runs in it) until the test ends. */
export function useTimeZone(zone: string): void {
  const before = process.env['TZ'];
  process.env['TZ'] = zone;
  onTestFinished(() => {
    if (before === undefined) delete process.env['TZ'];
    else process.env['TZ'] = before;
  });
}
