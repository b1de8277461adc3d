/**
 * Workload "durability": what a Redis crash costs the document cache in each SYNC_DURABILITY mode.
 * Four writers each merge `{ n }` into a document of their own over HTTP as fast as the server
 * answers; after a warm-up Redis is killed (no persistence: it comes back empty), restarted on the
 * same port, and every document is read back. Per trial:
 * - lost: acknowledged writes whose data did not survive (last acknowledged `n` − surviving `n`);
 * - window: from the acknowledgement of the earliest lost write to the crash, in ms;
 * - regressions: documents whose revision after the crash is not above the last acknowledged one
 *   (must be 0 in both modes).
 * Tributary runs in this process on its embedded database (Postgres in-process, PGlite).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startRedis, type RedisInstance } from '../../test/helpers/redis.ts';
import { waitFor } from '../../test/helpers/wait-for.ts';
import { graphqlData, postGraphQL } from '../lib/graphql-http.ts';
import { printTable, print } from '../lib/report.ts';
import { formatMillis } from '../lib/stats.ts';
import type { Workload } from '../lib/workload.ts';
import type { RunningPeer } from '../peers/peer.ts';
import { startTributaryPeer } from '../peers/tributary.ts';

const WRITERS = 4;
const MODES = ['sync', 'async'] as const;
type Mode = (typeof MODES)[number];

interface Trial {
  readonly acknowledged: number;
  readonly lost: number;
  readonly windowMs: number;
  readonly regressions: number;
  readonly writesPerSecond: number;
}

export const durability: Workload = {
  name: 'durability',
  description: 'documents: acknowledged writes lost when Redis crashes, SYNC_DURABILITY=sync vs async',
  async run(context) {
    const trials = context.quick ? 2 : 6;
    const warmupMs = context.quick ? 300 : 1500;
    print(
      `${WRITERS} writers, one document each, mergeDocument over HTTP back to back; Redis killed after ${warmupMs} ms (± 50%), ` +
        `restarted empty; ${trials} trials per mode`,
    );
    const rows: string[][] = [];
    const failures: string[] = [];
    for (const mode of MODES) {
      const results: Trial[] = [];
      for (let trial = 0; trial < trials; trial += 1) {
        results.push(await runTrial(mode, warmupMs * (0.5 + Math.random()), (name, step) => context.defer(name, step)));
      }
      const total = (pick: (trial: Trial) => number) => results.reduce((sum, trial) => sum + pick(trial), 0);
      const max = (pick: (trial: Trial) => number) => Math.max(...results.map(pick));
      rows.push([
        mode,
        total((t) => t.acknowledged).toLocaleString('en-US'),
        (total((t) => t.writesPerSecond) / results.length).toFixed(0),
        total((t) => t.lost).toLocaleString('en-US'),
        max((t) => t.lost).toLocaleString('en-US'),
        results.some((t) => t.lost > 0) ? formatMillis(max((t) => t.windowMs)) : '—',
        total((t) => t.regressions).toLocaleString('en-US'),
      ]);
      if (total((t) => t.regressions) > 0) failures.push(`${mode}: a revision went backwards after the crash`);
      if (mode === 'sync' && total((t) => t.lost) > 0) failures.push('sync: acknowledged writes were lost');
    }
    printTable({
      title: 'Redis killed under write load: what survives',
      columns: [
        { header: 'durability', align: 'left' },
        { header: 'acknowledged writes' },
        { header: 'writes/s' },
        { header: 'lost (all trials)' },
        { header: 'lost (worst trial)' },
        { header: 'loss window (worst)' },
        { header: 'revisions backwards' },
      ],
      rows,
      notes: [
        'lost: acknowledged writes whose data is not in the document after the crash; loss window: earliest lost acknowledgement → crash',
        'async: a document never takes more than 64 unflushed revisions (UNFLUSHED_REVISIONS_LIMIT) and resumes above them after the crash; sync keeps its revision',
      ],
    });
    if (failures.length > 0) throw new Error(`durability: ${failures.join('; ')}`);
  },
};

async function runTrial(mode: Mode, crashAfterMs: number, defer: (name: string, step: () => Promise<void>) => void): Promise<Trial> {
  const redis: RedisInstance = await startRedis();
  defer(`redis-server :${redis.port}`, () => redis.dispose());
  const server: RunningPeer = await startTributaryPeer({ redis: { url: redis.url, keyPrefix: 'durability:' }, durability: mode });
  try {
    const url = `http://127.0.0.1:${server.port}/graphql`;
    const ids = Array.from({ length: WRITERS }, (_unused, index) => `d${index}`);
    for (const id of ids) await graphqlData(url, 'mutation($id: ID!) { createDocument(service: "durability", id: $id, data: { n: 0 }) { revision } }', { id });

    /** Per document: acknowledgement time of each `n`, and the last acknowledged revision. */
    const acknowledgedAt = new Map(ids.map((id) => [id, [performance.now()]]));
    const lastRevision = new Map(ids.map((id) => [id, 1]));
    let crashed = false;
    const started = performance.now();
    const writers = ids.map(async (id) => {
      for (let n = 1; !crashed; n += 1) {
        const { body } = await postGraphQL(url, 'mutation($id: ID!, $p: JSON!) { mergeDocument(service: "durability", id: $id, patch: $p) { revision } }', { id, p: { n } }, { timeoutMs: 10_000 });
        // Answered after the crash began: not counted either way (it may or may not be acknowledged).
        if (crashed || body.errors) return;
        acknowledgedAt.get(id)!.push(performance.now());
        lastRevision.set(id, (body.data as { mergeDocument: { revision: number } }).mergeDocument.revision);
      }
    });
    await sleep(crashAfterMs);
    crashed = true;
    const crashAt = performance.now();
    await redis.stop('crash');
    await Promise.all(writers);
    await redis.start();

    let lost = 0;
    let windowMs = 0;
    let regressions = 0;
    let acknowledged = 0;
    for (const id of ids) {
      const document = await readWhenBack(url, id);
      const acks = acknowledgedAt.get(id)!;
      const lastN = acks.length - 1;
      acknowledged += lastN;
      const survivingN = document.data.n;
      if (survivingN < lastN) {
        lost += lastN - survivingN;
        windowMs = Math.max(windowMs, crashAt - acks[survivingN + 1]!);
      }
      // Backwards: below the last acknowledged revision, or at it with other data (sync keeps it).
      const last = lastRevision.get(id)!;
      if (document.revision < last || (document.revision === last && survivingN !== lastN)) regressions += 1;
    }
    return { acknowledged, lost, windowMs, regressions, writesPerSecond: acknowledged / ((crashAt - started) / 1000) };
  } finally {
    await server.dispose();
    await redis.dispose();
  }
}

/** The document once Tributary answers for it again (its Redis came back empty). */
async function readWhenBack(url: string, id: string): Promise<{ revision: number; data: { n: number } }> {
  return waitFor(
    async () => {
      const data = await graphqlData(url, 'query($id: ID!) { document(service: "durability", id: $id) { revision data } }', { id }, { timeoutMs: 10_000 });
      const document = data['document'] as { revision: number; data: { n: number } } | null;
      if (!document) throw new Error('no document');
      return document;
    },
    { timeoutMs: 20_000, intervalMs: 50, message: `document ${id} unreadable after the Redis restart` },
  );
}
