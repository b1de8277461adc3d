import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql ships CJS (index.js) and ESM (index.mjs) without an exports map: Node picks the CJS
    // build for dependencies while Vite would pick the ESM one for our sources, and graphql
    // refuses types from "another realm". Pin everyone to the build Node loads.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
    // The workspace packages (packages/*) export their built dist/ to other projects and, under
    // this condition, their TypeScript sources: the tests run the sources, no build step. Added to
    // Vitest's own conditions (and passed to its worker processes as `--conditions`).
    conditions: ['tributary-source'],
  },
  ssr: { resolve: { conditions: ['tributary-source'] } },
  test: {
    // The server's suites and every workspace package's (packages/*/test).
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.{ts,tsx}'],
    // One shared Postgres and Redis for the run (or DATABASE_URL / REDIS_URL); see test/helpers.
    globalSetup: ['test/helpers/global-setup.ts'],
    pool: 'forks',
    // A worker process runs many files, importing the server's modules once instead of once per
    // file (imports were 13 % of the run's time, ~38 % for the short files). No test mocks modules
    // or leaves globals changed behind (fake timers and TZ are restored in each test's teardown).
    isolate: false,
    // Integration tests start real servers and wait on them (timers, child processes, sockets):
    // with 2 workers the 2-core CI machine was 65–92 % busy; a third fills those waits (the whole
    // suite 808 s against 962–975 s, the cores 97–100 % busy). More would only thrash.
    maxWorkers: 3,
    // A guard against a hang, not a measure: with three workers a test that starts processes (each
    // ~7 s of CPU) on a busy 2-core machine took over 30 s.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 60_000,
  },
});
