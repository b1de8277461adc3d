/**
 * The workers role: background work that needs no socket — the outbox pollers and webhook delivery
 * join here. It runs in its own processes (`npm run workers`, any number of them) next to servers,
 * or inside the one process of `npm start` (role `all`).
 */
import type { Pipeline } from './pipeline.ts';
import type { Disposable, StartContext } from './subsystem.ts';

export interface Workers extends Disposable {
  /** The names of the workers this process runs. */
  readonly running: readonly string[];
}

export function startWorkers({ logger }: StartContext, _parts: { readonly pipeline: Pipeline }): Workers {
  const running: string[] = [];
  logger.info({ workers: running }, 'workers ready');
  return { running, dispose: () => Promise.resolve() };
}
