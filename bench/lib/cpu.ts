/**
 * CPU time from /proc (Linux): of one process (a redis-server, a Postgres backend), and of the
 * whole machine over an interval — on a shared 2-core machine a step can be limited by other
 * tenants or by the machine itself rather than by the server under test, and the report should
 * say so.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';

/** /proc counts in USER_HZ clock ticks, 100 per second on every Linux ABI. */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (user + system) of a process so far, in µs; 0 once it is gone, NaN without /proc or pid. */
export async function processCpuMicros(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat') ? 0 : Number.NaN;
  }
  // After "(comm)": utime and stime are the 12th and 13th fields, in clock ticks.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND) * 1_000_000;
}

/**
 * CPU time of a set of processes that changes between readings — a database's backends, which a
 * pool opens and closes (pg closes a client idle for 10 s): a reading can only see the processes
 * alive then, so a sum of those alone drops the whole lifetime of one that ended since the last
 * reading, and a difference of two such sums can come out low, even negative. This one keeps every
 * process it was shown, with the last CPU time read of it.
 */
export interface ProcessSetCpu {
  /**
   * Books one reading of the processes alive now — `[key, cpuMicros]`, the key naming one process
   * (pid and start time: a reused pid is another process) — and resolves to the CPU so far, in µs,
   * of every process ever booked, those gone counted at their last reading (what they used after
   * it is not seen); NaN when a reading is NaN (no /proc).
   */
  record(readings: Iterable<readonly [key: string, cpuMicros: number]>): number;
}

export function createProcessSetCpu(): ProcessSetCpu {
  const last = new Map<string, number>();
  let total = 0;
  return {
    record(readings) {
      let unreadable = false;
      for (const [key, cpuMicros] of readings) {
        if (Number.isNaN(cpuMicros)) unreadable = true;
        const before = last.get(key) ?? 0;
        // A process that ended between the listing and the read reads 0: its last value stands.
        if (cpuMicros > before) {
          last.set(key, cpuMicros);
          total += cpuMicros - before;
        }
      }
      return unreadable ? Number.NaN : total;
    },
  };
}

export interface MachineCpuSample {
  /** Jiffies spent not idle (user, nice, system, irq, softirq, steal), all cores together. */
  readonly busy: number;
  readonly total: number;
}

/** Undefined where /proc/stat cannot be read. */
export function sampleMachineCpu(): MachineCpuSample | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').slice(0, 200).split('\n')[0]?.trim().split(/\s+/).slice(1, 9).map(Number);
    if (!fields || fields.length < 8 || fields.some((value) => !Number.isFinite(value))) return undefined;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait };
  } catch {
    return undefined;
  }
}

/** Cores busy on average between two samples (0 … number of cores); NaN when either is missing. */
export function busyCores(before: MachineCpuSample | undefined, after: MachineCpuSample | undefined): number {
  if (!before || !after || after.total <= before.total) return Number.NaN;
  return ((after.busy - before.busy) / (after.total - before.total)) * os.cpus().length;
}
