// The dependency rule of ARCHITECTURE §2, checked mechanically by `npm run lint`:
//   server → schema → resolvers → pipeline, db, auth;  workers → pipeline, db;
//   pipeline never imports schema, resolvers or server; no import cycles.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'pipeline-stays-below-the-api',
      comment: 'The pipeline is transport- and GraphQL-agnostic.',
      severity: 'error',
      from: { path: '^src/pipeline/' },
      to: { path: '^src/(schema|resolvers|server|workers|start)/' },
    },
    {
      name: 'resolvers-are-plain-functions',
      comment: 'Resolvers hold no GraphQL schema or transport code.',
      severity: 'error',
      from: { path: '^src/resolvers/' },
      to: { path: '^src/(schema|server|workers)/' },
    },
    {
      name: 'schema-does-not-know-the-transport',
      severity: 'error',
      from: { path: '^src/schema/' },
      to: { path: '^src/(server|workers)/' },
    },
    {
      name: 'foundations-stay-below',
      comment: 'db and auth are leaves for everything above them.',
      severity: 'error',
      from: { path: '^src/(db|auth)/' },
      to: { path: '^src/(schema|resolvers|server|pipeline|workers)/' },
    },
    {
      name: 'workers-use-pipeline-and-db-only',
      severity: 'error',
      from: { path: '^src/workers/' },
      to: { path: '^src/(schema|resolvers|server|start)/' },
    },
    {
      name: 'packages-use-the-public-api',
      comment: 'Workspace packages (packages/*) ship on their own: they talk to the server over GraphQL only, never import its code.',
      severity: 'error',
      from: { path: '^packages/' },
      to: { path: '^src/' },
    },
    {
      name: 'only-main-wires',
      comment: 'main.ts is the composition root; nothing imports it.',
      severity: 'error',
      from: {},
      to: { path: '^src/main\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
