// Preloaded before the server's entry point (`node --import ./scripts/require-node.mjs src/main.ts`):
// on a Node too old to run TypeScript sources, one line that says so, instead of
// ERR_UNKNOWN_FILE_EXTENSION for src/main.ts. Plain JavaScript that Node 18 parses; `--import`
// itself needs Node ≥ 18.18 (older ones stop at "bad option: --import").
//
// Why: type stripping is on by default from 22.18 (and 23.6), and `import.meta.main` (what runs
// main()) came in 24.2 and was backported to 22.18.

import process from 'node:process';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
// 22.18 and later 22.x (type stripping and `import.meta.main` backported), 24.2 and later: Node
// 23 and 24.0–24.1 strip types but have no `import.meta.main`, so the entry point would do nothing.
const supported = (major === 22 && minor >= 18) || (major === 24 && minor >= 2) || major >= 25;
if (!supported) {
  process.stderr.write(
    `Tributary needs Node 22.18+ or 24.2+ (found ${process.version}): it runs its TypeScript sources directly, with import.meta.main.\n` +
      'Install Node 24 (LTS) and run again — with nvm: nvm install 24 && nvm use 24; with fnm: fnm use --install-if-missing 24; ' +
      'or from https://nodejs.org/en/download.\n',
  );
  process.exit(1);
}
