// The committed client bundle (signaling-gateway/web/dist/room.js, embedded
// by `cargo build`) matches a fresh esbuild build of web/src/ with the
// locked packages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../signaling-gateway/web');

test('committed web/dist/room.js matches a fresh build', { timeout: 180_000 }, () => {
  if (!existsSync(path.join(web, 'node_modules', 'esbuild'))) {
    const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: web, encoding: 'utf8' });
    assert.equal(ci.status, 0, ci.stderr);
  }
  const check = spawnSync(process.execPath, ['build.mjs', '--check'], { cwd: web, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr + check.stdout);
});
