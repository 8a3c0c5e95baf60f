// The operator's font (salon --brand-font, issue 16): the room page puts it
// first in its font stack when it is configured, and keeps the system stack
// (and requests nothing) otherwise. The font is a real small woff2 if the
// machine has one (rustdoc's Open Sans, Apache-2.0, under the Rust
// toolchain), else a file with the woff2 signature only: then the CSS is
// checked but the face cannot load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSalon, launchBrowser, waitFor } from './helpers.mjs';

/** A real woff2 on this machine, or null. */
function realWoff2() {
  try {
    const sysroot = execFileSync('rustc', ['--print', 'sysroot'], { encoding: 'utf8' }).trim();
    const dir = path.join(sysroot, 'share/doc/rust/html/rustdoc/fonts');
    if (!existsSync(dir)) return null;
    const f = readdirSync(dir).find((n) => n.startsWith('open-sans-') && n.endsWith('.woff2'));
    return f ? path.join(dir, f) : null;
  } catch {
    return null;
  }
}

async function pageFont(salon, browser, requests) {
  const page = await browser.context.newPage();
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  await page.goto(`${salon.url}Fonts?lang=fr`);
  return page;
}

test('with --brand-font the page font stack starts with the operator font, which loads', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'salon-font-'));
  const font = path.join(dir, 'brand.woff2');
  const real = realWoff2();
  if (real) copyFileSync(real, font);
  else writeFileSync(font, Buffer.concat([Buffer.from('wOF2'), Buffer.alloc(60)]));
  t.diagnostic(`font: ${real ?? 'signature-only file'}`);
  const salon = await startSalon({ extraArgs: ['--brand-font', font] });
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const requests = [];
  const page = await pageFont(salon, browser, requests);
  await waitFor(() => page.evaluate(() => document.body.classList.contains('font-brand')), 'the brand font class');
  const family = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
  assert.match(family, /^"Salon Brand", system-ui/, family);
  if (real) {
    const status = await page.evaluate(async () => {
      await document.fonts.load('16px "Salon Brand"');
      await document.fonts.ready;
      return [...document.fonts].filter((f) => f.family.replace(/"/g, '') === 'Salon Brand').map((f) => f.status);
    });
    assert.deepEqual(status, ['loaded']);
    assert.equal(await page.evaluate(() => document.fonts.check('16px "Salon Brand"')), true);
  }
  await waitFor(() => requests.includes('/brand/font'), 'the font requested');
});

test('without --brand-font the system stack applies and no font is requested', { timeout: 60_000 }, async (t) => {
  const salon = await startSalon();
  t.after(() => salon.stop());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const requests = [];
  const page = await pageFont(salon, browser, requests);
  await waitFor(() => requests.includes('/config.json'), 'the branding fetched');
  await page.waitForLoadState('networkidle');
  const family = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
  assert.match(family, /^system-ui/, family);
  assert.equal(await page.evaluate(() => document.body.classList.contains('font-brand')), false);
  assert.ok(!requests.includes('/brand/font'), requests.join(' '));
});
