// Not part of the test run: takes docs/screenshot-meeting.png, the meeting
// page at 1440x900 with three participants, chat and pad open.
//   cargo build -p salon-gateway --bin salon && node screenshot.mjs
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSalon, launchBrowser, joinRoom, sleep } from './helpers.mjs';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/screenshot-meeting.png');
const salon = await startSalon();
const browser = await launchBrowser();
try {
  const [a, b, c] = [
    await joinRoom(browser.context, salon.url, 'Conseil-du-lundi', 'Aline Martin'),
    await joinRoom(browser.context, salon.url, 'Conseil-du-lundi', 'Bruno Leroy'),
    await joinRoom(browser.context, salon.url, 'Conseil-du-lundi', 'Chloé Dubois'),
  ];
  await a.page.setViewportSize({ width: 1440, height: 900 });
  await b.page.evaluate(() => window.salonTest.chat('Bonjour à tous, l’ordre du jour est dans le bloc-notes.'));
  await c.page.evaluate(() => window.salonTest.chat('Compte rendu précédent : https://exemple.gouv.fr/cr-2024-11'));
  await a.page.click('#toggle-pad');
  await sleep(1_000);
  await a.page.locator('#pad-editor .cm-content').click();
  await a.page.keyboard.insertText('# Ordre du jour\n\n- Budget 2025\n- Recrutements\n- Questions diverses\n');
  // Chat open last; both panels are visible in the shot: pad in the page, chat on a second capture.
  await sleep(5_000);
  await a.page.click('#toggle-chat');
  await a.page.fill('#chat-text', 'Merci, je prends des notes.');
  await sleep(500);
  await a.page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await salon.stop();
}
