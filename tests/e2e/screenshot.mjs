// Not part of the test run: takes the screenshots of docs/screenshots/ at
// 1440x900, 1280x720, 390x844 and 844x390 (a phone on its side): pre-join, a meeting of four in grid and
// in speaker view, the screen-share stage, the participants list with two
// hands raised, the chat and the pad, and the lobby alert on the
// moderator's screen (a guest knocking at an agents' meeting) (and
// docs/screenshot-meeting.png, the grid at 1440x900).
//   cargo build -p salon-gateway --bin salon && node screenshot.mjs [only-this-size]
import path from 'node:path';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { startSalon, launchBrowser, joinRoom, openSocket, sleep, writeAuthConfig, mintJwt, DEFAULT_POLICY } from './helpers.mjs';

const docs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs');
const dir = path.join(docs, 'screenshots');
const SIZES = [
  [1440, 900],
  [1280, 720],
  [390, 844],
  [844, 390],
].filter(([w, h]) => !process.argv[2] || process.argv[2] === `${w}x${h}`);
const ROOM = 'Conseil-du-lundi';
const AGENTS_ROOM = 'Accueil-des-usagers';

await mkdir(dir, { recursive: true });
const salon = await startSalon();
const browser = await launchBrowser();
let agentsSalon = null;
try {
  const a = await joinRoom(browser.context, salon.url, ROOM, 'Aline Martin');
  const b = await joinRoom(browser.context, salon.url, ROOM, 'Bruno Leroy');
  const c = await joinRoom(browser.context, salon.url, ROOM, 'Chloé Dubois');
  // The fourth joins without a camera: an avatar with initials.
  const d = await joinRoom(browser.context, salon.url, ROOM, 'Damien Roux', { camera: false });
  await b.page.evaluate(() => window.salonTest.chat('Bonjour à tous, l’ordre du jour est dans le bloc-notes.'));
  await c.page.evaluate(() => window.salonTest.chat('Compte rendu précédent : https://exemple.gouv.fr/cr-2024-11'));
  await d.page.evaluate(() => window.salonTest.chat('Je suis en audio seulement, mauvaise connexion ici.'));
  await b.page.click('#toggle-pad');
  await b.page.locator('#pad-editor .cm-content').click();
  await b.page.keyboard.insertText('# Ordre du jour\n\n- Budget 2025\n- Recrutements\n- Questions diverses\n');
  await b.page.keyboard.press('Escape');
  // Two hands up, Damien's first: the participants list shows them in order.
  await d.page.evaluate(() => window.salonTest.raiseHand());
  await sleep(300);
  await b.page.evaluate(() => window.salonTest.raiseHand());
  // The agents' meeting (the shipped policy, tokens): guests knock there.
  const auth = await writeAuthConfig();
  agentsSalon = await startSalon({ policy: DEFAULT_POLICY, authConfig: auth.path });
  const jwtFor = (name, sub) => mintJwt(auth.secret, { name, sub, room: AGENTS_ROOM });
  const agents = {
    salon: agentsSalon,
    aline: await joinRoom(browser.context, agentsSalon.url, AGENTS_ROOM, 'Aline Martin', { jwt: jwtFor('Aline Martin', 'agent-aline') }),
  };
  await joinRoom(browser.context, agentsSalon.url, AGENTS_ROOM, 'Bruno Leroy', { jwt: jwtFor('Bruno Leroy', 'agent-bruno') });
  // A second page of the same browser for the pre-join shots.
  const pre = await browser.context.newPage();
  await pre.goto(`${salon.url}${ROOM}?lang=fr`);
  await pre.fill('#name', 'Élise Petit');
  await sleep(6_000);

  const shot = async (page, w, h, name) => {
    const file = path.join(dir, `${w}x${h}-${name}.png`);
    await sleep(800);
    // No focus ring left by the script's own key presses.
    await page.evaluate(() => document.activeElement?.blur());
    await page.screenshot({ path: file });
    console.log(`wrote ${file}`);
    return file;
  };
  const escape = async () => {
    await a.page.keyboard.press('Escape');
    await sleep(200);
  };
  for (const [w, h] of SIZES) {
    // As app.css: below 720 px wide, or a phone on its side (landscape, at most 500 px high), the panels are in "more".
    const phone = w < 720 || (h <= 500 && w > h);
    await pre.setViewportSize({ width: w, height: h });
    await shot(pre, w, h, 'prejoin');
    await a.page.setViewportSize({ width: w, height: h });
    await a.page.bringToFront();
    await a.page.evaluate(() => window.salonTest.chooseLayout('grid'));
    const grid = await shot(a.page, w, h, 'grid');
    if (w === 1440) await copyFile(grid, path.join(docs, 'screenshot-meeting.png'));
    await a.page.evaluate(() => window.salonTest.chooseLayout('speaker'));
    await shot(a.page, w, h, 'speaker');
    await a.page.evaluate(() => window.salonTest.chooseLayout(null));
    // Chloé shares her screen: everyone's layout goes to the stage.
    await c.page.evaluate(() => window.salonTest.shareScreen());
    await a.page.waitForFunction(() => window.salonTest.layout().mode === 'stage', null, { timeout: 15_000 });
    await sleep(2_000);
    await shot(a.page, w, h, 'stage');
    await c.page.evaluate(() => window.salonTest.stopShare());
    await a.page.waitForFunction(() => window.salonTest.layout().mode !== 'stage', null, { timeout: 15_000 });
    const open = async (p) => {
      if (phone && p !== 'chat') {
        await a.page.click('#more');
        await a.page.click('#more-' + p);
      } else {
        await a.page.click('#toggle-' + p);
      }
    };
    await open('people');
    await shot(a.page, w, h, 'people');
    await escape();
    await open('chat');
    await a.page.fill('#chat-text', 'Merci, je prends des notes.');
    await shot(a.page, w, h, 'chat');
    await escape();
    await open('pad');
    await sleep(1_500);
    await shot(a.page, w, h, 'pad');
    await escape();
    // A guest knocks at the agents' meeting (the shipped policy): Aline,
    // its moderator, gets the toast with admit / deny, the title count and
    // the chime.
    await agents.aline.page.setViewportSize({ width: w, height: h });
    await agents.aline.page.bringToFront();
    const guest = await openSocket(agents.salon.wsUrl);
    guest.send({ type: 'join', room: AGENTS_ROOM, name: 'Gaston Lefèvre' });
    await agents.aline.page.waitForFunction(() => window.salonTest.waiting().length === 1, null, { timeout: 10_000 });
    await shot(agents.aline.page, w, h, 'lobby-alert');
    guest.send({ type: 'leave' });
    guest.ws.close();
    await agents.aline.page.waitForFunction(() => window.salonTest.waiting().length === 0, null, { timeout: 10_000 });
  }
} finally {
  await browser.close();
  await salon.stop();
  await agentsSalon?.stop();
}
