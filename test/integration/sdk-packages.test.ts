/**
 * The SDK packages as another project gets them: `npm pack` (which builds them, `prepack`), the
 * tarballs unpacked into a temporary project's node_modules — not a workspace link — with their
 * dependencies linked from this repository's node_modules (no network). A plain `node` process
 * with type stripping off (Node 18/20 have none, and Node 22+ refuses it inside node_modules)
 * imports every entry point and uses it; `tsc` type-checks a consumer against the packed .d.ts,
 * with Node's resolution (node16) and a bundler's.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
/** Lifecycle scripts (prepack → tsc) run on this test's Node, not whichever `node` is first on PATH. */
const ENV = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };
/** What the packages import at run time and what their .d.ts refer to, linked from the repo. */
const LINKED = ['graphql', 'graphql-ws', '@graphql-typed-document-node/core', 'react', 'react-dom', '@types/react', '@types/node', 'undici-types'];

interface PackResult {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

const CONSUMER_JS = `
import { createHmac } from 'node:crypto';
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { backoffDelay, createClient, documents, subscribeModel } from '@tributary/client';
import { verifyWebhook, WebhookVerificationError } from '@tributary/client/webhooks';
import { enqueueOutboxEvent } from '@tributary/client/outbox';
import { TributaryProvider, useRealtime } from '@tributary/react';

const key = Buffer.from('packed-sdk-test-secret-24');
const body = JSON.stringify({ id: 'evt_1', type: 'order.created', payload: { total: 12 } });
const timestamp = Math.floor(Date.now() / 1000);
const signature = createHmac('sha256', key).update(\`evt_1.\${timestamp}.\${body}\`).digest('base64');
const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(timestamp), 'webhook-signature': \`v1,\${signature}\` };
const verified = verifyWebhook(body, headers, \`whsec_\${key.toString('base64')}\`);
let refused = '';
try {
  verifyWebhook(body.replace('12', '13'), headers, \`whsec_\${key.toString('base64')}\`);
} catch (error) {
  if (error instanceof WebhookVerificationError) refused = error.code;
}
const outbox = await enqueueOutboxEvent({ query: () => Promise.reject(new Error('not reached')) }, { topic: 't', type: 'x', payload: {} }, { table: 'no-such table' })
  .then(() => 'inserted', (error) => error.constructor.name);

// A lazy client opens no socket until its first use: server rendering with the hooks.
const client = createClient({ url: 'ws://127.0.0.1:9/graphql', lazy: true });
function Contacts() {
  const { records, status } = useRealtime('contacts');
  return createElement('p', null, \`\${status}:\${records.length}\`);
}
const html = renderToString(createElement(TributaryProvider, { client }, createElement(Contacts)));
client.close();

process.stdout.write(JSON.stringify({
  verified: verified.id, payload: verified.payload, refused, outbox, html,
  subscribeModel: typeof subscribeModel, backoff: backoffDelay(3, {}, () => 0),
  documents: typeof documents.TributaryPublishDocument,
}));
`;

const CONSUMER_TS = `
import { createClient, type ModelChangeEvent, type TributaryClient } from '@tributary/client';
import { verifyWebhook, type VerifiedWebhook } from '@tributary/client/webhooks';
import { enqueueOutboxEvent, type OutboxQueryable } from '@tributary/client/outbox';
import { TributaryProvider, useRealtime, type UseRealtimeResult } from '@tributary/react';

export const client: TributaryClient = createClient({ url: 'ws://127.0.0.1:4000/graphql', lazy: true });
export const receive = (body: string, headers: Record<string, string>): VerifiedWebhook => verifyWebhook(body, headers, 'whsec_x');
export const enqueue = (db: OutboxQueryable): Promise<string> => enqueueOutboxEvent(db, { topic: 'orders', type: 'order.created', payload: { id: 1 } });
export const useContacts = (): UseRealtimeResult<{ id: number }> => useRealtime<{ id: number }>('contacts');
export const provider: typeof TributaryProvider = TributaryProvider;
export const operation = (event: ModelChangeEvent): string => event.operation;
// The types are real, not \`any\`: a wrong option is an error.
// @ts-expect-error url is a string
createClient({ url: 4000 });
`;

/**
 * A Node service's settings (node16, Node's types, no DOM) or a browser app's (bundler, the DOM's).
 * The first also checks the packed .d.ts themselves (skipLibCheck off: an import they cannot
 * resolve is an error); that is most of the time, so once is enough.
 */
function tsconfig(kind: 'node16' | 'bundler'): string {
  const [module, lib, types] = kind === 'node16' ? ['node16', ['ES2023'], ['node']] : ['preserve', ['ES2023', 'DOM'], []];
  return JSON.stringify({
    compilerOptions: { module, moduleResolution: kind, target: 'ES2022', lib, types, strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, noEmit: true, skipLibCheck: kind === 'bundler' },
    files: ['consumer.ts'],
  });
}

describe('the SDK packages, packed and installed elsewhere', () => {
  let work = '';
  let app = '';
  const packed = new Map<string, PackResult>();

  // `npm pack` builds each package (tsc, a few seconds of CPU; the React package builds the client
  // first): generous limits for a busy machine.
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tributary-sdk-'));
    app = join(work, 'app');
    for (const name of ['client', 'react']) {
      const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: join(ROOT, 'packages', name), env: ENV });
      const [result] = JSON.parse(stdout.slice(stdout.indexOf('['))) as PackResult[];
      if (!result) throw new Error(`npm pack of ${name} reported nothing`);
      packed.set(name, result);
      const target = join(app, 'node_modules/@tributary', name);
      await mkdir(target, { recursive: true });
      await run('tar', ['-xzf', join(work, result.filename), '-C', target, '--strip-components=1']);
    }
    for (const name of LINKED) {
      await mkdir(dirname(join(app, 'node_modules', name)), { recursive: true });
      await symlink(join(ROOT, 'node_modules', name), join(app, 'node_modules', name), 'dir');
    }
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  }, 240_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('ship the built JavaScript, its types and source maps, the README, and no tests', () => {
    for (const name of ['client', 'react']) {
      const paths = packed.get(name)?.files.map((file) => file.path) ?? [];
      expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/index.js.map']));
      // The sources come along for the source maps; no tests, build configs or build info.
      expect(paths.filter((path) => !/^(dist|src)\/|^(package\.json|README\.md)$/.test(path) || /\.test\.|tsbuildinfo/.test(path))).toEqual([]);
    }
    expect(packed.get('client')?.files.map((file) => file.path)).toEqual(expect.arrayContaining(['dist/webhooks.js', 'dist/outbox.js', 'dist/webhooks.d.ts', 'dist/outbox.d.ts']));
  });

  it('run in plain Node, without type stripping: client, webhooks, outbox and the React hooks', async () => {
    await writeFile(join(app, 'consumer.mjs'), CONSUMER_JS);
    const { stdout } = await run(process.execPath, ['--no-experimental-strip-types', 'consumer.mjs'], { cwd: app, env: ENV });
    expect(JSON.parse(stdout)).toEqual({
      verified: 'evt_1',
      payload: { id: 'evt_1', type: 'order.created', payload: { total: 12 } },
      refused: 'BAD_SIGNATURE',
      outbox: 'TypeError',
      html: '<p>loading:0</p>',
      subscribeModel: 'function',
      backoff: 0,
      documents: 'object',
    });
  });

  it('type-check a consumer against the packed declarations (node16 and bundler resolution)', async () => {
    await writeFile(join(app, 'consumer.ts'), CONSUMER_TS);
    await writeFile(join(app, 'tsconfig.node16.json'), tsconfig('node16'));
    await writeFile(join(app, 'tsconfig.bundler.json'), tsconfig('bundler'));
    const check = (project: string) =>
      run(process.execPath, [TSC, '-p', project], { cwd: app, env: ENV }).then(
        () => 'ok',
        // tsc prints its errors on stdout: they are the failure message.
        (error: Error & { stdout?: string }) => error.stdout || error.message,
      );
    expect(await Promise.all([check('tsconfig.node16.json'), check('tsconfig.bundler.json')])).toEqual(['ok', 'ok']);
  }, 120_000);
});
