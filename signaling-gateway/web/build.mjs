// Bundles the room client (src/room.js + CodeMirror 6 + Yjs) into
// dist/room.js with esbuild. The output is committed: `cargo build` embeds
// it without node. `node build.mjs --check` rebuilds in memory and fails if
// the committed bundle differs (run by tests/e2e/bundle.test.mjs).
import * as esbuild from 'esbuild';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'dist', 'room.js');
const check = process.argv.includes('--check');

const result = await esbuild.build({
  entryPoints: [path.join(here, 'src', 'room.js')],
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
    console.error('web/dist/room.js is stale: run `npm run build` in signaling-gateway/web');
    process.exit(1);
  }
  console.log(`web/dist/room.js is up to date (${text.length} bytes)`);
} else {
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, text);
  console.log(`wrote web/dist/room.js (${text.length} bytes)`);
}
