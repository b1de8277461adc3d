/**
 * Bundles the React contacts page (esbuild, in memory) and serves it from a small HTTP server:
 * `/` the page, `/main.js` the bundle. Used by the browser test, and by hand:
 *
 *   node examples/react-contacts/serve.ts   # then open the printed address with ?ws=…&token=…
 *
 * React is bundled in its development build: StrictMode mounts components twice only there,
 * which is what the example shows it survives.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const PAGE = `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>Contacts — Tributary + React</title></head>
  <body><div id="root"></div><script type="module" src="/main.js"></script></body>
</html>
`;

export interface ReactContactsServer {
  /** `http://127.0.0.1:port/` */
  readonly url: string;
  close(): Promise<void>;
}

/** The page's script, bundled (React, @tributary/react and @tributary/client included). */
export async function bundleReactContacts(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('page/main.tsx', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    jsx: 'automatic',
    // @tributary/* from their TypeScript sources (this repository's export condition), not dist/.
    conditions: ['tributary-source'],
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'silent',
  });
  const [output] = result.outputFiles;
  if (!output) throw new Error('esbuild produced no bundle');
  return output.text;
}

export async function startReactContacts(options: { readonly port?: number } = {}): Promise<ReactContactsServer> {
  const script = await bundleReactContacts();
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path === '/') response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    else if (path === '/main.js') response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startReactContacts({ port: Number(process.env['PORT'] ?? 5173) });
  process.stdout.write(`React contacts example on ${url}?ws=ws://127.0.0.1:4000/graphql&token=<JWT with crm.contacts.read>\n`);
}
