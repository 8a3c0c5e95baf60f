// Bundles the browser client with esbuild: the room client (src/room.js +
// CodeMirror 6 + Yjs) into dist/room.js, the connection-test page
// (src/connection-test.js) into dist/connection-test.js. The output is
// committed: `cargo build` embeds it without node. `node build.mjs --check`
// rebuilds in memory and fails if a committed bundle differs (run by
// tests/e2e/bundle.test.mjs).
import * as esbuild from 'esbuild';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes('--check');
const ENTRIES = ['room', 'connection-test'];

let stale = false;
for (const name of ENTRIES) {
  const out = path.join(here, 'dist', `${name}.js`);
  const result = await esbuild.build({
    entryPoints: [path.join(here, 'src', `${name}.js`)],
    bundle: true,
    format: 'esm',
    target: ['es2022'],
    minify: true,
    legalComments: 'eof',
    charset: 'utf8',
    write: false,
    logLevel: 'warning',
  });
  const text = result.outputFiles[0].text;
  if (check) {
    let committed = '';
    try {
      committed = readFileSync(out, 'utf8');
    } catch {}
    if (committed !== text) {
      console.error(`web/dist/${name}.js is stale: run \`npm run build\` in signaling-gateway/web`);
      stale = true;
    } else {
      console.log(`web/dist/${name}.js is up to date (${text.length} bytes)`);
    }
  } else {
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, text);
    console.log(`wrote web/dist/${name}.js (${text.length} bytes)`);
  }
}
if (stale) process.exit(1);
