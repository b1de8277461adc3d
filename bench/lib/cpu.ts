/**
 * How busy the whole machine was over an interval, from /proc/stat (Linux): on a shared 2-core
 * machine a step can be limited by other tenants or by the machine itself rather than by the
 * server under test, and the report should say so.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

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
