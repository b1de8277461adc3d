/**
 * `npm run bench [-- <workload>…] [--quick] [--rounds N] [--allow-skip]`: runs the workloads (all
 * by default) against Tributary and its peers on loopback and prints, per workload, a table and the
 * `ours/peer` ratios. Absolute numbers on a shared 2-core machine are noisy; the ratios taken
 * within one run are what count. Every server and socket started is stopped at the end, also
 * when a workload fails or the run is interrupted. A peer or workload skipped for want of a binary
 * fails the run (exit 1) unless `--allow-skip` is given.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createCleanupStack } from '../src/cleanup-stack.ts';
import { createLogger } from '../src/logger.ts';
import { startPeerProcess } from './lib/peer-process.ts';
import { print } from './lib/report.ts';
import { createSkips } from './lib/skips.ts';
import { formatMillis } from './lib/stats.ts';
import type { Workload, WorkloadContext } from './lib/workload.ts';
import { cdc } from './workloads/cdc.ts';
import { docs } from './workloads/docs.ts';
import { durability } from './workloads/durability.ts';
import { fanout } from './workloads/fanout.ts';
import { outbox } from './workloads/outbox.ts';
import { reconnect } from './workloads/reconnect.ts';
import { roundtrip } from './workloads/roundtrip.ts';
import { webhooks } from './workloads/webhooks.ts';

/** In run order. */
const WORKLOADS: readonly Workload[] = [roundtrip, fanout, docs, durability, cdc, outbox, webhooks, reconnect];

const USAGE = `usage: npm run bench [-- <workload>…] [--quick] [--rounds N] [--allow-skip]
  workloads: ${WORKLOADS.map((workload) => workload.name).join(', ')} (default: all)
  --quick       shortened run, to check that everything works
  --rounds N    measurements per peer, alternating between peers (default 2)
  --allow-skip  exit 0 even when a peer or workload was skipped (a binary missing)`;

interface RunOptions {
  readonly workloads: readonly Workload[];
  readonly quick: boolean;
  readonly rounds: number;
  readonly allowSkip: boolean;
}

/** Parses the command line; returns a message instead when it cannot. */
function parseOptions(argv: readonly string[]): RunOptions | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        quick: { type: 'boolean', default: false },
        rounds: { type: 'string', default: '2' },
        'allow-skip': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    return `${error instanceof Error ? error.message : String(error)}\n${USAGE}`;
  }
  if (parsed.values.help) return USAGE;
  const rounds = Number(parsed.values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) return `--rounds must be an integer from 1 to 20\n${USAGE}`;
  const unknown = parsed.positionals.filter((name) => !WORKLOADS.some((workload) => workload.name === name));
  if (unknown.length > 0) return `unknown workload: ${unknown.join(', ')}\n${USAGE}`;
  const workloads = parsed.positionals.length === 0 ? WORKLOADS : WORKLOADS.filter((workload) => parsed.positionals.includes(workload.name));
  return { workloads, quick: parsed.values.quick, rounds, allowSkip: parsed.values['allow-skip'] };
}

function printHeader(options: RunOptions): void {
  const cpus = os.cpus();
  print(`Tributary benchmarks — ${new Date().toISOString()}`);
  print(`node ${process.version} (${process.platform} ${process.arch}), ${cpus[0]?.model.trim() ?? 'unknown CPU'} × ${cpus.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
  print(`load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}; ${options.quick ? 'QUICK run (smoke test: numbers are not meaningful)' : 'full run'}, ${options.rounds} rounds`);
  print('servers run in child processes on 127.0.0.1; ratios are ours/peer from this run (absolute times are noisy here)');
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (typeof options === 'string') {
    print(options);
    return options === USAGE ? 0 : 2;
  }
  const started = performance.now();
  // The shared stack logs a failed step (as a JSON line on stderr) and goes on with the others;
  // a failed step also fails the run.
  let cleanupFailures = 0;
  const cleanup = createCleanupStack(
    createLogger({
      level: 'error',
      destination: {
        write(line: string) {
          cleanupFailures += 1;
          process.stderr.write(line);
        },
      },
    }),
  );
  const interrupted = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping servers`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const skips = createSkips();
  const context: WorkloadContext = {
    quick: options.quick,
    rounds: options.rounds,
    async startPeer(name, peerOptions) {
      const peer = await startPeerProcess(name, peerOptions);
      cleanup.push(`peer ${name} (pid ${peer.pid})`, () => peer.stop());
      return peer;
    },
    defer: (name, step) => cleanup.push(name, step),
    skip(what, why) {
      skips.add(what, why);
      print(`${what}: skipped (${why})`);
    },
  };

  printHeader(options);
  let failed = false;
  try {
    for (const workload of options.workloads) {
      const workloadStarted = performance.now();
      print();
      print(`== ${workload.name}: ${workload.description}`);
      await workload.run(context);
      print(`(${workload.name}: ${formatMillis(performance.now() - workloadStarted)})`);
    }
  } catch (error) {
    failed = true;
    console.error(`\nbenchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    await cleanup.run();
    if (cleanupFailures > 0) failed = true;
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
  }
  print();
  const verdict = skips.verdict(options.allowSkip);
  for (const line of verdict.lines) print(line);
  print(`total wall time ${formatMillis(performance.now() - started)}`);
  return failed || verdict.fails ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Everything was stopped, so the process should exit by itself; if something still holds
    // it open, say what instead of hanging.
    setTimeout(() => {
      console.error(`still running 5 s after cleanup: ${process.getActiveResourcesInfo().join(', ')}`);
      process.exit(code === 0 ? 1 : code);
    }, 5000).unref();
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
