// Preloaded before the server's entry point (`node --import ./scripts/require-node.mjs src/main.ts`):
// on a Node too old to run TypeScript sources, one line that says so, instead of
// ERR_UNKNOWN_FILE_EXTENSION for src/main.ts. Plain JavaScript that Node 18 parses; `--import`
// itself needs Node ≥ 18.18 (older ones stop at "bad option: --import").
//
// Why 22.18: type stripping is on by default from it (and 23.6), and `import.meta.main` is there.

import process from 'node:process';

const REQUIRED = [22, 18];

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < REQUIRED[0] || (major === REQUIRED[0] && minor < REQUIRED[1])) {
  process.stderr.write(
    `Tributary needs Node ≥ ${REQUIRED.join('.')} (found ${process.version}): it runs its TypeScript sources directly, which older Node cannot.\n` +
      'Install Node 24 (LTS) and run again — with nvm: nvm install 24 && nvm use 24; with fnm: fnm use --install-if-missing 24; ' +
      'or from https://nodejs.org/en/download.\n',
  );
  process.exit(1);
}
